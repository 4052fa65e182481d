"""The built-in standards catalogue: one YAML document per standard in this folder."""
