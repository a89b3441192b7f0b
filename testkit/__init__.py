"""Test tooling: SIP user agents (sipp wrappers), RTP/pcap writers, isolated Asterisk
instances, IVR fakes.  Used by tests/ and bench/, never by the server."""
