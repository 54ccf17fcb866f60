/** The CLI flow (test/app/flow-cli-suite.ts) with the bank on SQLite; its PostgreSQL twin is app-flow-cli-postgres. */
import { describeCliFlow } from "./flow-cli-suite.js";

describeCliFlow("sqlite");
