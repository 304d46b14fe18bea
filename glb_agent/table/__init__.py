"""GLB forwarding tables: rendezvous-hash construction, upstream file formats, diffs."""
