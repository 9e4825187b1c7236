-- Argo CD health of a NetworkVolume, from its kstatus conditions.
hs = { status = "Progressing", message = "waiting for the operator" }
local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then return c end
  end
  return nil
end
if obj.spec ~= nil and obj.spec.managementPolicy == "Paused" then
  hs.status = "Suspended"
  hs.message = "managementPolicy is Paused"
  return hs
end
if obj.status == nil then return hs end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.message = "the operator has not acted on the latest spec yet"
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
end
return hs
