"""Tiled fitting of scenes too large to fit in one piece, and batches of clouds.

``recon.tiling.tiles``: the tile grid (cores and overlaps); ``ingest``: streaming a large
cloud into per-tile files; ``tilemesh``: meshing one tile's core on a lattice shared by
all tiles; ``stitch``: welding the tiles' meshes into one; ``run``: the whole job, on Ray
or in this process.
"""
