import { randomBytes } from 'node:crypto';
import { DEMO_USERS, findUserByEmail, type DemoUser } from './users.js';

export type Folder = 'inbox' | 'sent';

export interface Message {
  id: string;
  folder: Folder;
  from: string;
  to: string;
  subject: string;
  body: string;
  /** ISO 8601. */
  date: string;
}

export interface MessageSummary {
  id: string;
  folder: Folder;
  from: string;
  to: string;
  subject: string;
  date: string;
  snippet: string;
}

/** Per-mailbox cap, so a runaway client cannot grow the demo's memory without bound. */
export const MAX_MESSAGES_PER_MAILBOX = 1000;

export class MailboxFullError extends Error {
  override readonly name = 'MailboxFullError';
}

const newId = () => `msg_${randomBytes(12).toString('hex')}`;

function seedFor(user: DemoUser, now: number): Omit<Message, 'id'>[] {
  const at = (hoursAgo: number) => new Date(now - hoursAgo * 3_600_000).toISOString();
  const other = DEMO_USERS.find((u) => u.id !== user.id);
  const colleague = other?.email ?? 'carol@example.mail';
  return [
    {
      folder: 'inbox',
      from: 'welcome@example.mail',
      to: user.email,
      subject: 'Welcome to Example Mail',
      body: `Hi ${user.name},\n\nyour mailbox is ready. This is a demo: everything resets when the server restarts.\n\n— The Example Mail team`,
      date: at(72),
    },
    {
      folder: 'inbox',
      from: colleague,
      to: user.email,
      subject: `Lunch on Thursday? (for ${user.username})`,
      body: `Hey ${user.name.split(' ')[0] ?? user.name}, are you free for lunch on Thursday at 12:30?`,
      date: at(26),
    },
    {
      folder: 'inbox',
      from: 'billing@utility.example',
      to: user.email,
      subject: 'Your invoice is ready',
      body: `Dear ${user.name},\n\nyour invoice for this month is available in your account. Amount due: €42.00.`,
      date: at(5),
    },
    {
      folder: 'sent',
      from: user.email,
      to: colleague,
      subject: 'Re: project notes',
      body: 'Thanks, I will read them tonight.',
      date: at(30),
    },
  ];
}

const summary = (m: Message): MessageSummary => ({
  id: m.id,
  folder: m.folder,
  from: m.from,
  to: m.to,
  subject: m.subject,
  date: m.date,
  snippet: m.body.length > 80 ? `${m.body.slice(0, 79)}…` : m.body,
});

/** Per-user mailboxes, in memory, seeded with a few messages per demo user. */
export class MailStore {
  readonly #boxes = new Map<string, Message[]>();

  constructor(users: readonly DemoUser[] = DEMO_USERS) {
    const now = Date.now();
    for (const user of users)
      this.#boxes.set(
        user.id,
        seedFor(user, now).map((m) => ({ id: newId(), ...m })),
      );
  }

  #box(userId: string): Message[] {
    let box = this.#boxes.get(userId);
    if (!box) this.#boxes.set(userId, (box = []));
    return box;
  }

  /** Newest first. */
  list(userId: string, folder?: Folder, limit = 50): { messages: MessageSummary[]; total: number } {
    const all = this.#box(userId)
      .filter((m) => !folder || m.folder === folder)
      .sort((a, b) => b.date.localeCompare(a.date));
    return { messages: all.slice(0, limit).map(summary), total: all.length };
  }

  get(userId: string, id: string): Message | undefined {
    const message = this.#box(userId).find((m) => m.id === id);
    return message ? { ...message } : undefined;
  }

  delete(userId: string, id: string): boolean {
    const box = this.#box(userId);
    const index = box.findIndex((m) => m.id === id);
    if (index < 0) return false;
    box.splice(index, 1);
    return true;
  }

  /** Files the message in the sender's `sent` folder and delivers it to a local recipient's inbox. */
  send(sender: DemoUser, input: { to: string; subject: string; body: string }): Message {
    const box = this.#box(sender.id);
    if (box.length >= MAX_MESSAGES_PER_MAILBOX) throw new MailboxFullError('mailbox full');
    const date = new Date().toISOString();
    const to = input.to.trim();
    const sent: Message = {
      id: newId(),
      folder: 'sent',
      from: sender.email,
      to,
      subject: input.subject,
      body: input.body,
      date,
    };
    box.push(sent);
    const recipient = findUserByEmail(to);
    if (recipient) {
      const inbox = this.#box(recipient.id);
      if (inbox.length < MAX_MESSAGES_PER_MAILBOX) inbox.push({ ...sent, id: newId(), folder: 'inbox' });
    }
    return { ...sent };
  }
}
