"""robosuite / MuJoCo worlds (issue 4)."""
