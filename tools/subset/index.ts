/** Public API of the firmware subset checker (see firmware/SUBSET.md). */
export { checkSubset, checkProgram, subsetFiles, readLuaCompilerOptions, SUBSET_DIRS, type CheckOptions } from "./check-subset.js";
export { checkLuaOutput } from "./check-lua-output.js";
export { tokenizeLua, classifyLuaNumeral, type LuaToken } from "./lua-tokens.js";
export { ALL_RULES, SOURCE_RULES, LUA_RULES, formatViolation, type Violation, type RuleId } from "./rules.js";
