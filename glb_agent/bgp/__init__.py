"""BGP announcement of the VIPs: ExaBGP config, the readiness-gated API feed, drain state.

The director announces only while its data plane can forward; everything here exists to
keep that promise, and to make the router drop a director quickly when it cannot.
"""
