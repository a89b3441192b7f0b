"""Pure outbound policy: calling window, retries, pacing.  No I/O, no clock: ``now`` is passed in."""
