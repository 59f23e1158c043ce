# The real-binary tier (issue 9, point 3): Debian 13's Blender 4.3.2 in a chroot cached outside the
# checkout (tools/blender_chroot.sh; RENDER_TAG_CACHE moves it), then tests/binary/ against it.
# Needs root. UI screenshots land in test-artifacts/blender-ui/.
.PHONY: blender-chroot test-blender

blender-chroot:
	bash tools/blender_chroot.sh

test-blender: setup blender-chroot
	RENDER_TAG_BINARY_TIER=1 $(VENV)/bin/pytest tests/binary -v $(PYTEST_ARGS)
