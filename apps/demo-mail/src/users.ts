import { createHash, timingSafeEqual } from 'node:crypto';

/** A demo account. Passwords are public by design (printed by `npm start`); never reuse them. */
export interface DemoUser {
  /** Stable subject identifier (`sub` of the tokens). */
  readonly id: string;
  readonly username: string;
  readonly name: string;
  readonly email: string;
}

interface StoredUser extends DemoUser {
  readonly passwordDigest: Buffer;
}

const digest = (password: string) => createHash('sha256').update(password, 'utf8').digest();

/** The demo users and their (public) passwords. */
export const DEMO_CREDENTIALS: readonly { readonly username: string; readonly password: string }[] = [
  { username: 'alice', password: 'alice-password' },
  { username: 'bob', password: 'bob-password' },
];

const USERS: readonly StoredUser[] = [
  {
    id: 'alice',
    username: 'alice',
    name: 'Alice Liddell',
    email: 'alice@example.mail',
    passwordDigest: digest('alice-password'),
  },
  {
    id: 'bob',
    username: 'bob',
    name: 'Bob Builder',
    email: 'bob@example.mail',
    passwordDigest: digest('bob-password'),
  },
];

const publicView = ({ id, username, name, email }: StoredUser): DemoUser => ({ id, username, name, email });

/** The demo users, without credentials. */
export const DEMO_USERS: readonly DemoUser[] = USERS.map(publicView);

export function findUser(id: string): DemoUser | undefined {
  const user = USERS.find((u) => u.id === id);
  return user ? publicView(user) : undefined;
}

export function findUserByEmail(email: string): DemoUser | undefined {
  const wanted = email.trim().toLowerCase();
  const user = USERS.find((u) => u.email === wanted);
  return user ? publicView(user) : undefined;
}

/** Checks a username/password pair; compares digests in constant time and always hashes once. */
export function authenticate(username: string, password: string): DemoUser | undefined {
  const presented = digest(password);
  const user = USERS.find((u) => u.username === username.trim().toLowerCase());
  const expected = user?.passwordDigest ?? digest('\u0000no-such-user');
  const ok = timingSafeEqual(presented, expected);
  return user && ok ? publicView(user) : undefined;
}
