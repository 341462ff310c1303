/** Names shared by the built-in IdP and its clients (the CLI), kept light to import. */

/** Audience (resource indicator) of access tokens for the control API. */
export const CONTROL_API_AUDIENCE = "urn:postern:control";
/** The public client the CLI uses (device authorization grant). */
export const CLI_CLIENT_ID = "postern-cli";
