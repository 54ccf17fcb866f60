/**
 * The opening TSTL writes for a bundle (luaBundle): the module table, the
 * cache and its require. Tests of the image's build passes
 * (tools/subset/*.ts) put their modules after it, as TSTL lays them out.
 */
export const TSTL_BUNDLE_HEAD = String.raw`
local ____modules = {}
local ____moduleCache = {}
local function require(file, ...)
    if ____moduleCache[file] then return ____moduleCache[file].value end
    local value = ____modules[file](file)
    ____moduleCache[file] = { value = value }
    return value
end
`;
