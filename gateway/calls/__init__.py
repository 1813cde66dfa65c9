"""Browser calls: the `CallManager` behind the faces' contract, and one `Call` per visitor,
which rings the site's destinations and bridges the one that answers."""
