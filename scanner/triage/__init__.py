"""What a team already knows about its findings: a baseline and waivers."""
