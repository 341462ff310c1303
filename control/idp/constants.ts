/** Names shared by the built-in IdP and its clients (the CLI), kept light to import. */

/** Audience (resource indicator) of access tokens for the control API. */
export const CONTROL_API_AUDIENCE = "urn:postern:control";
/** The public client the CLI uses (device authorization grant). */
export const CLI_CLIENT_ID = "postern-cli";
/** The public client the admin console and My Apps sign in with (authorization code + PKCE). */
export const CONSOLE_CLIENT_ID = "postern-console";
/** Where the console's sign-ins come back to, under control's public URL. */
export const CONSOLE_CALLBACK_PATH = "/ui/callback";
