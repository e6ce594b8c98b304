export { createMailService, type MailService, type MailServiceOptions } from './service.js';
export { MAIL_SCOPES, OIDC_SCOPES, SCOPE_MAP, type MailScope } from './scopes.js';
export { DEMO_CREDENTIALS, DEMO_USERS, type DemoUser } from './users.js';
export type { Folder, Message, MessageSummary } from './mailbox.js';
