import { randomBytes } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { escapeHtml as esc } from '@athkit/fastify';
import type { CartItem, Order, Product } from './db.js';

const money = (cents: number) => `€${(cents / 100).toFixed(2)}`;

const STYLE = `
  :root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; }
  body { margin: 0; background: #f4f5f7; }
  header { background: #1f3c88; color: #fff; padding: .9rem 1.5rem; display: flex; justify-content: space-between; align-items: center; }
  header a, header button { color: #fff; }
  main { max-width: 46rem; margin: 2rem auto; background: #fff; border-radius: 12px; padding: 1.75rem 2rem; box-shadow: 0 2px 12px rgba(20,30,60,.08); }
  table { width: 100%; border-collapse: collapse; } td, th { text-align: left; padding: .4rem .3rem; border-bottom: 1px solid #eceef2; }
  label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
  input[type=text], input[type=password] { width: 100%; padding: .55rem .6rem; border: 1px solid #c5cad3; border-radius: 8px; font: inherit; box-sizing: border-box; }
  button { font: inherit; padding: .55rem 1.2rem; border-radius: 8px; border: 1px solid #2356d8; background: #2356d8; color: #fff; cursor: pointer; margin-top: 1rem; }
  header button { background: transparent; border-color: #fff; margin: 0; padding: .3rem .8rem; }
  .error { color: #a2281f; } .muted { color: #6b7383; }
`;

function page(reply: FastifyReply, title: string, user: string | null, body: string, status = 200): FastifyReply {
  const nonce = randomBytes(16).toString('base64');
  reply.header(
    'content-security-policy',
    `default-src 'none'; style-src 'nonce-${nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  reply.header('cache-control', 'no-store');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  const account = user
    ? `<form method="post" action="/logout">Signed in as <strong>${esc(user)}</strong> <button type="submit">Log out</button></form>`
    : '<a href="/login">Log in</a>';
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style nonce="${nonce}">${STYLE}</style></head>
<body><header><strong>ATH Shop</strong><span>${account}</span></header>
<main>${body}</main></body></html>`);
}

export function loginPage(reply: FastifyReply, returnTo: string, error: string | null, status = 200): FastifyReply {
  return page(
    reply,
    'Log in — ATH Shop',
    null,
    `<h1>Log in</h1>
<p class="muted">Sign in to ATH Shop. An agent asking for access never sees your password.</p>
${error ? `<p class="error">${esc(error)}</p>` : ''}
<form method="post" action="/login">
  <input type="hidden" name="return_to" value="${esc(returnTo)}">
  <label for="username">Username</label><input id="username" name="username" type="text" autocomplete="username" required>
  <label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Log in</button>
</form>`,
    status,
  );
}

export function homePage(
  reply: FastifyReply,
  user: string | null,
  products: Product[],
  cart: CartItem[],
  orders: Order[],
): FastifyReply {
  const rows = products
    .map((p) => `<tr><td>${esc(p.name)}</td><td class="muted">${esc(p.description)}</td><td>${money(p.price_cents)}</td></tr>`)
    .join('');
  const mine = user
    ? `<h2>Your cart</h2>${
        cart.length
          ? `<ul>${cart.map((c) => `<li>${c.quantity} × ${esc(c.name)}</li>`).join('')}</ul>`
          : '<p class="muted">Empty.</p>'
      }<h2>Your orders</h2>${
        orders.length
          ? `<ul>${orders.map((o) => `<li>#${o.id} — ${money(o.total_cents)} (${o.items.length} item(s))</li>`).join('')}</ul>`
          : '<p class="muted">None yet.</p>'
      }`
    : '<p class="muted">Log in to see your cart and orders.</p>';
  return page(
    reply,
    'ATH Shop',
    user,
    `<h1>Products</h1><table><tr><th>Product</th><th>Description</th><th>Price</th></tr>${rows}</table>${mine}
<p class="muted">Agents: discover this shop at <code>/.well-known/ath-app.json</code>.</p>`,
  );
}
