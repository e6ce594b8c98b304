export { createShop, createLogger, APP_ID, SHOP_SCOPES, REDACT_PATHS, type Shop, type ShopOptions } from './shop.js';
export { DEMO_USERS, ShopDb, type Product, type CartItem, type Order } from './db.js';
export { hashPassword, verifyPassword } from './passwords.js';
