import { randomBytes } from 'node:crypto';

/** HTML-escapes any value for use in text and in double- or single-quoted attributes. */
export function esc(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** What each scope means, in words a user can consent to. */
export const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  'mail:read': 'Read your messages',
  'mail:send': 'Send messages as you',
  'mail:delete': 'Delete your messages',
  openid: 'Know your Example Mail account ID',
  offline_access: 'Keep this access while you are not using the app',
};

const STYLE = `
  :root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; }
  body { margin: 0; background: #eef2f6; }
  header { background: #b3261e; color: #fff; padding: .9rem 1.5rem; font-weight: 700; }
  main { max-width: 30rem; margin: 2.5rem auto; background: #fff; border-radius: 12px; padding: 1.75rem 2rem; box-shadow: 0 2px 12px rgba(20,30,60,.08); }
  h1 { font-size: 1.4rem; margin-top: 0; }
  label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
  input[type=text], input[type=password] { width: 100%; padding: .55rem .6rem; border: 1px solid #c5cad3; border-radius: 8px; font: inherit; box-sizing: border-box; }
  ul.scopes { list-style: none; padding: 0; } ul.scopes li { padding: .45rem 0; border-bottom: 1px solid #eceef2; }
  ul.scopes label { display: inline; font-weight: 400; margin: 0; } code { background: #f1f3f6; padding: 0 .25rem; border-radius: 4px; }
  .actions { display: flex; gap: .75rem; margin-top: 1.25rem; }
  button { font: inherit; padding: .55rem 1.2rem; border-radius: 8px; border: 1px solid #b3261e; background: #b3261e; color: #fff; cursor: pointer; }
  button.secondary { background: #fff; color: #b3261e; }
  .error { color: #a2281f; font-weight: 600; } .muted { color: #6b7383; font-size: .92rem; }
`;

export interface HtmlPage {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A complete page with its security headers. `formTargets` are the origins a form on this page may
 * end up at: CSP `form-action` also governs the redirects that follow a form submission, and the
 * login/consent forms end in a redirect to the client's redirect_uri.
 */
export function page(
  title: string,
  main: string,
  options: { status?: number; formTargets?: readonly string[] } = {},
): HtmlPage {
  const nonce = randomBytes(16).toString('base64');
  const formAction = ["'self'", ...(options.formTargets ?? [])].join(' ');
  return {
    status: options.status ?? 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    },
    body: `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style nonce="${esc(nonce)}">${STYLE}</style></head>
<body><header>Example Mail</header>
<main>${main}</main></body></html>`,
  };
}

export function loginPage(input: {
  uid: string;
  clientName: string;
  username?: string;
  error?: string;
  formTargets: readonly string[];
}): HtmlPage {
  return page(
    'Sign in — Example Mail',
    `<h1>Sign in to Example Mail</h1>
<p class="muted"><strong>${esc(input.clientName)}</strong> wants to access your mailbox. Sign in to continue.</p>
${input.error ? `<p class="error" role="alert">${esc(input.error)}</p>` : ''}
<form method="post" action="/interaction/${esc(input.uid)}">
  <label for="username">Username</label>
  <input id="username" type="text" name="username" value="${esc(input.username ?? '')}" autocomplete="username" autocapitalize="none" required autofocus>
  <label for="password">Password</label>
  <input id="password" type="password" name="password" autocomplete="current-password" required>
  <div class="actions">
    <button type="submit" name="decision" value="login">Sign in</button>
    <button type="submit" name="decision" value="deny" class="secondary" formnovalidate>Cancel</button>
  </div>
</form>`,
    { formTargets: input.formTargets },
  );
}

export function consentPage(input: {
  uid: string;
  clientName: string;
  user: { username: string; email: string };
  /** Scopes the user may tick (resource scopes), all ticked by default. */
  choices: readonly string[];
  /** Scopes granted with the consent and shown for information (openid, offline_access). */
  fixed: readonly string[];
  error?: string;
  formTargets: readonly string[];
}): HtmlPage {
  const item = (scope: string, checkbox: boolean, i: number) => {
    const text = `${esc(SCOPE_DESCRIPTIONS[scope] ?? scope)} <code>${esc(scope)}</code>`;
    return checkbox
      ? `<li><input type="checkbox" id="scope-${i}" name="scope" value="${esc(scope)}" checked> <label for="scope-${i}">${text}</label></li>`
      : `<li>${text}</li>`;
  };
  return page(
    'Allow access? — Example Mail',
    `<h1>Allow access to your mailbox?</h1>
<p><strong>${esc(input.clientName)}</strong> is asking for access to the Example Mail account of
<strong>${esc(input.user.username)}</strong> (${esc(input.user.email)}).</p>
${input.error ? `<p class="error" role="alert">${esc(input.error)}</p>` : ''}
<form method="post" action="/interaction/${esc(input.uid)}">
  <p>Untick anything you do not want to allow:</p>
  <ul class="scopes">
    ${input.choices.map((s, i) => item(s, true, i)).join('\n    ')}
    ${input.fixed.map((s, i) => item(s, false, i)).join('\n    ')}
  </ul>
  <div class="actions">
    <button type="submit" name="decision" value="approve">Allow</button>
    <button type="submit" name="decision" value="deny" class="secondary">Deny</button>
  </div>
</form>
<p class="muted">You can come back and sign in again to change what you allowed.</p>`,
    { formTargets: input.formTargets },
  );
}

export function errorPage(title: string, message: string, status: number): HtmlPage {
  return page(`${title} — Example Mail`, `<h1>${esc(title)}</h1><p>${esc(message)}</p>`, { status });
}
