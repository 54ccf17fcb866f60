/** Fuzz shard 1 of 2 (see fuzz-frames.ts). */
import { fuzzShard } from "./fuzz-frames.js";

fuzzShard(1);
