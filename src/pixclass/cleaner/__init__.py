"""`pixclass clean`: a browser cleaner for a dataset (FastAPI + one static page, no build step).

Owns: `source` (which folder is cleaned and its images with their labels, from a run or a folder),
`paths` (confining request paths to the dataset root, moving files without overwriting), `journal`
(the append-only record of decisions), `session` (decisions, undo, trash, `cleaned.csv`), `views`
(label-issue scores and duplicate groups), `settings`, `app` (`create_app(root, settings)`),
`notebook` (the cleaner inside Jupyter or Colab) and `static/` (the page).
Importing this package imports nothing heavy; `pixclass.cleaner.app` imports FastAPI.
"""
