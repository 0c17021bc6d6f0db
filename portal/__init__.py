"""The toolbox every app of the portal shares; it depends on no app of ours (see apps.py)."""
