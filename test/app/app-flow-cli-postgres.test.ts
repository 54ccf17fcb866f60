/** The CLI flow (test/app/flow-cli-suite.ts) with the bank on PostgreSQL, in a schema of its own; its SQLite twin is app-flow-cli-sqlite. */
import { describeCliFlow } from "./flow-cli-suite.js";

describeCliFlow("postgres");
