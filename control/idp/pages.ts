/** The IdP's few HTML pages (sign-in, device code, messages): small, escaped, no external assets. */

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Postern</title>
<style>body{font:16px system-ui,sans-serif;background:#f4f5f7;margin:0}main{max-width:22rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem}input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;background:#2456c8;color:#fff;border:0;border-radius:4px}.error{color:#b00020}.muted{color:#666;font-size:.85rem}</style>
</head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

export function loginPage(action: string, client: string, error?: string, username = ""): string {
  return page("Sign in", `${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ""}
<p class="muted">to ${escapeHtml(client)}</p>
<form method="post" action="${escapeHtml(action)}" autocomplete="off">
<label for="username">Username</label><input id="username" name="username" value="${escapeHtml(username)}" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<label for="otp">One-time code <span class="muted">(if you enrolled an authenticator)</span></label><input id="otp" name="otp" inputmode="numeric" pattern="[0-9]{6}">
<button type="submit">Sign in</button></form>`);
}
