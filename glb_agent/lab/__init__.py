"""The namespace lab: a whole fleet (router, directors, proxies, client) on one machine."""
