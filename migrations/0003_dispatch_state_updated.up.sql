-- The status page's "latest failed dispatches" (store.Latest with a state)
-- reads the newest rows of one state. Through the updated_at index it
-- walked back over every other row until it found enough of that state:
-- the whole table when failures are rare (internal/plans flagged it at a
-- million dispatches). This index gives them in order at once.
ALTER TABLE `{prefix}sidecar_dispatches`
  ADD KEY `{prefix}sidecar_dispatch_state_updated` (state, updated_at);
