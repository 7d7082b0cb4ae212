// The e2e page: a plain React app that uses the package as documented, with
// a stand-in for Clerk's useAuth() (the test mints the session token and
// passes it in the URL, with the user id and the usersync endpoint).
import { createRoot } from "react-dom/client";

import { useUserSync } from "../../dist/index.js";

const params = new URLSearchParams(location.search);
const userId = params.get("user");
const token = params.get("token");
const endpoint = params.get("endpoint");
const attempts = Number(params.get("attempts") ?? 3);

// What useAuth() returns once Clerk has loaded a signed-in session.
const auth = { isLoaded: true, isSignedIn: true, userId, getToken: async () => token };

function App() {
  const { syncStatus, syncedUser, syncError } = useUserSync(auth, { endpoint, attempts, debug: true });
  window.__usersync = { syncStatus, syncedUser, syncError: syncError && { status: syncError.status, message: syncError.message } };
  return (
    <main>
      <h1>usersync e2e</h1>
      <p id="status" data-status={syncStatus}>
        {syncStatus}
        {syncError ? ` (${syncError.status}: ${syncError.message})` : ""}
        {syncedUser ? ` as ${syncedUser.id}` : ""}
      </p>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<App />);
