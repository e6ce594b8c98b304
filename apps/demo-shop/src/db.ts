import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { hashPassword } from './passwords.js';

export interface Product {
  id: number;
  sku: string;
  name: string;
  description: string;
  price_cents: number;
}

export interface CartItem {
  product_id: number;
  name: string;
  quantity: number;
  price_cents: number;
}

export interface Order {
  id: number;
  created_at: string;
  total_cents: number;
  items: { product_id: number; name: string; quantity: number; price_cents: number }[];
}

/** The demo users: username → password (printed by the demo so you can log in). */
export const DEMO_USERS: Readonly<Record<string, { password: string; displayName: string }>> = {
  alice: { password: 'alice-password', displayName: 'Alice Example' },
  bob: { password: 'bob-password', displayName: 'Bob Example' },
};

const PRODUCTS: Omit<Product, 'id'>[] = [
  { sku: 'TEA-GREEN', name: 'Sencha green tea', description: '100 g loose leaf, first flush', price_cents: 1290 },
  { sku: 'COF-BEANS', name: 'Espresso beans', description: '1 kg, medium roast', price_cents: 2450 },
  { sku: 'MUG-BLUE', name: 'Blue stoneware mug', description: '350 ml, dishwasher safe', price_cents: 1500 },
  { sku: 'KETTLE', name: 'Gooseneck kettle', description: '0.9 l, variable temperature', price_cents: 6900 },
  { sku: 'FILTERS', name: 'Paper filters', description: 'Size 02, pack of 100', price_cents: 590 },
];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
  id_hash TEXT PRIMARY KEY,
  username TEXT NOT NULL REFERENCES users(username),
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
  id INTEGER PRIMARY KEY,
  sku TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  price_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cart_items (
  username TEXT NOT NULL REFERENCES users(username),
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (username, product_id)
);
CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL REFERENCES users(username),
  created_at TEXT NOT NULL,
  total_cents INTEGER NOT NULL,
  placed_by_agent TEXT
);
CREATE TABLE IF NOT EXISTS order_items (
  order_id INTEGER NOT NULL REFERENCES orders(id),
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL,
  price_cents INTEGER NOT NULL
);
`;

/** The shop's own data (products, carts, orders, users, web sessions) in SQLite, WAL mode. */
export class ShopDb {
  readonly sql: Database.Database;

  private constructor(file: string) {
    this.sql = new Database(file);
    this.sql.pragma('journal_mode = WAL');
    this.sql.pragma('synchronous = NORMAL');
    this.sql.pragma('foreign_keys = ON');
    this.sql.exec(SCHEMA);
  }

  static async open(dataDir: string): Promise<ShopDb> {
    mkdirSync(dataDir, { recursive: true });
    const db = new ShopDb(join(dataDir, 'shop.db'));
    await db.seed();
    return db;
  }

  private async seed(): Promise<void> {
    const insertProduct = this.sql.prepare(
      'INSERT OR IGNORE INTO products (sku, name, description, price_cents) VALUES (@sku, @name, @description, @price_cents)',
    );
    for (const p of PRODUCTS) insertProduct.run(p);
    const hasUser = this.sql.prepare('SELECT 1 FROM users WHERE username = ?');
    const insertUser = this.sql.prepare('INSERT INTO users (username, display_name, password_hash) VALUES (?, ?, ?)');
    for (const [username, u] of Object.entries(DEMO_USERS)) {
      if (!hasUser.get(username)) insertUser.run(username, u.displayName, await hashPassword(u.password));
    }
  }

  passwordHash(username: string): string | null {
    const row = this.sql.prepare('SELECT password_hash FROM users WHERE username = ?').get(username) as { password_hash: string } | undefined;
    return row?.password_hash ?? null;
  }

  displayName(username: string): string | null {
    const row = this.sql.prepare('SELECT display_name FROM users WHERE username = ?').get(username) as { display_name: string } | undefined;
    return row?.display_name ?? null;
  }

  createWebSession(idHash: string, username: string, expiresAt: number): void {
    this.sql.prepare('INSERT INTO web_sessions (id_hash, username, expires_at) VALUES (?, ?, ?)').run(idHash, username, expiresAt);
  }

  webSessionUser(idHash: string, now: number): string | null {
    const row = this.sql.prepare('SELECT username FROM web_sessions WHERE id_hash = ? AND expires_at > ?').get(idHash, now) as
      | { username: string }
      | undefined;
    return row?.username ?? null;
  }

  deleteWebSession(idHash: string): void {
    this.sql.prepare('DELETE FROM web_sessions WHERE id_hash = ?').run(idHash);
  }

  products(): Product[] {
    return this.sql.prepare('SELECT id, sku, name, description, price_cents FROM products ORDER BY id').all() as Product[];
  }

  product(id: number): Product | null {
    return (this.sql.prepare('SELECT id, sku, name, description, price_cents FROM products WHERE id = ?').get(id) as Product | undefined) ?? null;
  }

  cart(username: string): CartItem[] {
    return this.sql
      .prepare(
        `SELECT c.product_id, p.name, c.quantity, p.price_cents FROM cart_items c JOIN products p ON p.id = c.product_id
         WHERE c.username = ? ORDER BY p.id`,
      )
      .all(username) as CartItem[];
  }

  /** Adds `quantity` of a product to the cart (creating the line if needed); returns the cart. */
  addToCart(username: string, productId: number, quantity: number): CartItem[] {
    this.sql
      .prepare(
        `INSERT INTO cart_items (username, product_id, quantity) VALUES (?, ?, ?)
         ON CONFLICT (username, product_id) DO UPDATE SET quantity = MIN(quantity + excluded.quantity, 999)`,
      )
      .run(username, productId, quantity);
    return this.cart(username);
  }

  /** Turns the cart into an order in one transaction; null when the cart is empty. */
  placeOrder(username: string, agentId: string | null, now: Date): Order | null {
    return this.sql.transaction((): Order | null => {
      const items = this.cart(username);
      if (items.length === 0) return null;
      const total = items.reduce((sum, i) => sum + i.quantity * i.price_cents, 0);
      const created = now.toISOString();
      const { lastInsertRowid } = this.sql
        .prepare('INSERT INTO orders (username, created_at, total_cents, placed_by_agent) VALUES (?, ?, ?, ?)')
        .run(username, created, total, agentId);
      const id = Number(lastInsertRowid);
      const line = this.sql.prepare('INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (?, ?, ?, ?)');
      for (const i of items) line.run(id, i.product_id, i.quantity, i.price_cents);
      this.sql.prepare('DELETE FROM cart_items WHERE username = ?').run(username);
      return { id, created_at: created, total_cents: total, items };
    })();
  }

  orders(username: string): Order[] {
    const orders = this.sql
      .prepare('SELECT id, created_at, total_cents FROM orders WHERE username = ? ORDER BY id DESC')
      .all(username) as Omit<Order, 'items'>[];
    const items = this.sql.prepare(
      `SELECT i.product_id, p.name, i.quantity, i.price_cents FROM order_items i JOIN products p ON p.id = i.product_id
       WHERE i.order_id = ? ORDER BY i.product_id`,
    );
    return orders.map((o) => ({ ...o, items: items.all(o.id) as Order['items'] }));
  }

  close(): void {
    this.sql.close();
  }
}
