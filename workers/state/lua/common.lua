-- Helpers every script starts with (redis_store.py joins them in front of each script).

-- an integer as Redis counts them (HINCRBY refuses "1e3", "1.0" or 20 digits)
local function integer(value)
  if type(value) ~= 'string' or #value > 18 or not string.match(value, '^%-?%d+$') then
    return nil
  end
  return tonumber(value)
end

-- a number as the replies and keys carry it: exact (17 significant digits)
local function num(v) return string.format('%.17g', v) end
