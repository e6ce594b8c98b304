export {
  runDemo,
  SEED_SCOPES,
  PRE_AUTHORIZATION_SECONDS,
  type DemoOptions,
  type DemoResult,
} from './demo.js';
