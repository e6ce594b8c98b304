export { main, VERSION } from './main.js';
export { EXIT, UsageError, ConfigError, exitCodeFor } from './errors.js';
export { athHome, CONFIG_KEYS, type Io, type Config, type ConfigKey } from './context.js';
export { COMMANDS, mask, type Command } from './commands.js';
