"""The interactive viewer: a cloud, a mesh, a field's slices and the error, in one pyvista scene.

    from recon.viewer import ViewerScene
    scene = ViewerScene(off_screen=True)
    scene.add_cloud(cloud)
    scene.add_mesh(mesh)
    scene.reset_camera()
    scene.screenshot("shot.png")

The scene is built separately from any window, so it renders offscreen (tests, machines
without a display) exactly as it shows on screen or in a browser (``recon.viewer.web``).
pyvista is imported on first use, not by ``import recon.viewer``.
"""

from recon.viewer.config import KEYS, ViewerConfig, display_available
from recon.viewer.measures import probe
from recon.viewer.scene import ViewerScene

__all__ = ["KEYS", "ViewerConfig", "ViewerScene", "display_available", "probe"]
