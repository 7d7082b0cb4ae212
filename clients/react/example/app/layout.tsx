import { ClerkProvider } from "@clerk/nextjs";
import type { ReactNode } from "react";

import { UserSync } from "./user-sync";

export const metadata = { title: "usersync + Clerk + Next.js" };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <ClerkProvider>
      <html lang="en">
        <body>
          <UserSync />
          {children}
        </body>
      </html>
    </ClerkProvider>
  );
}
