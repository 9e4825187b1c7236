-- Argo CD health of a RunPodAccount: Degraded when the key does not work or the runway is
-- under the account's minimum, Healthy when RunPod answers.
hs = { status = "Progressing", message = "waiting for the operator" }
local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then return c end
  end
  return nil
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
local credit = condition("InsufficientCredit")
if credit ~= nil and credit.status == "True" then
  hs.status = "Degraded"
  hs.message = credit.message
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
end
return hs
