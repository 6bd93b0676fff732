"""The embedded default dataset (`elpv-dataset` solar cells) and the `pixclass demo` recipe."""
