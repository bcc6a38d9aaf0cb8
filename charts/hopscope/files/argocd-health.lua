-- Argo CD health of a hopscope.dev ConnectivityCheck, from the status its operator writes.
-- Healthy: the current spec's last run reached the destination. Degraded: it did not, it did
-- with loss or latency over the check's thresholds, its probe gave no verdict, or the check
-- cannot run at all (Stalled). Progressing: the current spec has no result yet.
local hs = {}

local function condition(status, kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function said(c) -- "Reason: message", as kubectl describe shows a condition
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator's first look at this check"
  return hs
end

local reconciling = condition(status, "Reconciling")
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  if reconciling ~= nil and reconciling.status == "True" then
    hs.message = reconciling.message
  else
    hs.message = string.format("Generation %d of the spec is not probed yet", generation)
  end
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(stalled)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message
  return hs
end
local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "False" then
  -- What an operator from before Stalled wrote for a check that cannot run.
  hs.status = "Degraded"
  hs.message = said(ready)
  return hs
end
if status.phase == "Pending" or status.phase == "Running" then
  hs.status = "Progressing"
  hs.message = "Phase " .. status.phase
  return hs
end

local reachable = condition(status, "Reachable")
local connection = status.connectionStatus
if reachable ~= nil and reachable.message ~= nil and reachable.message ~= "" then
  hs.message = reachable.message
else
  hs.message = connection
end
if connection == "Reachable" then
  hs.status = "Healthy"
elseif connection == "Unreachable" or connection == "Degraded" then
  hs.status = "Degraded"
elseif connection == "Unknown" then
  -- The run ended without a verdict (probe pod OOM-killed, timed out, ...): it needs a look.
  hs.status = "Degraded"
else
  hs.status = "Unknown"
  hs.message = "Unrecognised status: phase " .. tostring(status.phase) .. ", connectionStatus "
    .. tostring(connection)
end
return hs
