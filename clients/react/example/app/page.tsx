import { SignInButton, UserButton } from "@clerk/nextjs";

export default function Home() {
  return (
    <main>
      <h1>usersync example</h1>
      <p>Sign in: the first page load after it adds you to the service&apos;s users table.</p>
      <SignInButton />
      <UserButton />
    </main>
  );
}
