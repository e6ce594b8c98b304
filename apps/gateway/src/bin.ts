#!/usr/bin/env node
import { main } from './cli.js';

const code = await main(process.argv.slice(2));
// `start` keeps the process alive through its server; every other command ends here.
if (process.argv[2] !== 'start' || code !== 0) process.exitCode = code;
