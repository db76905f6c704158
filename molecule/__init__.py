"""The Molecule platform core: project settings, workspaces, activity log and workspace auth."""
