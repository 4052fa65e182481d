"""The built-in standards: the latest version of each in this folder, one YAML document each;
earlier versions in ``history/`` as ``NAME@VERSION.yaml`` (stored standards never change)."""
