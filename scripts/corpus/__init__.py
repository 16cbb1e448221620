"""The maintainers' real-mesh corpus builder: Debian game and design packages -> labelled, deduplicated meshes.

`make corpus` (or `python -m scripts.corpus --help`) downloads the packages with `apt-get download`,
unpacks them with `dpkg-deb -x` (nothing is installed system-wide), converts every object mesh to a
Z-up OBJ, filters and deduplicates, labels by category and writes manifests and the fixed split.
"""
