"""The browser page of the web view: the server-rendered scene with the window's controls as
page widgets (layer toggles, error colours, clip plane, iso-level slider, the key list, a
screenshot saved on the server, and a double click that reads the values under it), and the
window's keys, caught on the page and sent to the server.

Each widget calls the same ViewerScene method as the window's key or widget, so the page
shows what the window would; ``recon.viewer.web`` serves it.
"""

from __future__ import annotations

from recon.viewer import measures
from recon.viewer.controls import key_actions, key_screenshot, pick_at, toggle_clip

KEY_TRIGGER = "recon_key"
# Keys typed on the page (not into a text field, and without Ctrl, Alt or Meta) go to the server.
KEY_SCRIPT = f"""
document.addEventListener("keydown", (e) => {{
  const t = e.target;
  const typing = t && (t.isContentEditable || t.tagName === "TEXTAREA" ||
    (t.tagName === "INPUT" && !["checkbox", "radio", "range", "button"].includes(t.type)));
  if (typing || e.ctrlKey || e.altKey || e.metaKey || e.key.length !== 1 || !window.trame) return;
  window.trame.trigger("{KEY_TRIGGER}", [e.key.toLowerCase()]);
}});
"""


def build_page(server, scene, SinglePageLayout, plotter_ui):
    """Lay out ``scene`` on the trame ``server``'s page; returns the view (its ``update()`` redraws)."""
    from trame.widgets import client, html
    from trame.widgets import vuetify3 as v3

    state, ctrl = server.state, server.controller
    for layer, shown in scene.visible.items():
        state[f"show_{layer}"] = shown
    state.errors = scene.mesh_coloring in ("gt", "input")
    state.clip = scene.clip is not None
    state.picked = ""
    has_field = scene.field is not None
    if has_field:
        lo, hi = measures.level_range(measures.field_traits(scene.field), scene.level)
        state.level = scene.level
        state.level_min, state.level_max = lo, hi
        state.level_step = (hi - lo) / 200

    with SinglePageLayout(server) as layout:
        layout.title.set_text("recon view")
        with layout.toolbar:
            v3.VSpacer()
            for layer in scene.visible:
                v3.VCheckbox(v_model=(f"show_{layer}",), label=layer, hide_details=True, density="compact",
                             classes=f"mx-1 recon-show-{layer}")
            v3.VCheckbox(v_model=("errors",), label="error colours", hide_details=True, density="compact",
                         disabled=scene.mesh is None, classes="mx-1 recon-errors")
            v3.VCheckbox(v_model=("clip",), label="clip", hide_details=True, density="compact", classes="mx-1 recon-clip")
            v3.VBtn("keys", click=ctrl.toggle_help, variant="text", density="compact", classes="recon-help")
            v3.VBtn("save png", click=ctrl.save_png, variant="text", density="compact", classes="recon-save")
            if has_field:
                v3.VSlider(v_model=("level",), min=("level_min",), max=("level_max",), step=("level_step",),
                           label="iso-level", hide_details=True, density="compact", style="max-width: 300px",
                           classes="mx-2 recon-level", end=(ctrl.level_released, "[$event]"))
        with layout.content, html.Div(
            style="position: relative; width: 100%; height: 100%", classes="recon-view",
            # a double click picks (a single one starts a rotation): its position as fractions of the view
            dblclick=(ctrl.pick_at, ("[($event.clientX - $event.currentTarget.getBoundingClientRect().left) / "
                                     "$event.currentTarget.clientWidth, ($event.clientY - "
                                     "$event.currentTarget.getBoundingClientRect().top) / "
                                     "$event.currentTarget.clientHeight]")),
        ):
            view = plotter_ui(scene.plotter, mode="server", server=server, add_menu=False)
            client.Script(KEY_SCRIPT)
            v3.VSheet("{{ picked }}", style="position: absolute; bottom: 8px; left: 8px; white-space: pre; "
                      "font-size: 12px; background: rgba(255,255,255,0.8)", classes="recon-picked")

    def redraw():
        view.update()

    for layer in scene.visible:
        state.change(f"show_{layer}")(lambda layer=layer, **kw: (scene.set_visible(layer, kw[f"show_{layer}"]),
                                                                   redraw()))

    @state.change("errors")
    def _errors(errors, **_):
        if scene.mesh is None or bool(errors) == (scene.mesh_coloring in ("gt", "input")):
            return  # already so (a key changed the colouring, or another one than the error's is shown)
        want = ("gt" if scene.gt is not None else "input") if errors else "plain"
        if want in scene.mesh_colorings():
            scene.set_mesh_coloring(want)
            redraw()

    @state.change("clip")
    def _clip(clip, **_):
        if bool(clip) != (scene.clip is not None):
            toggle_clip(scene)
            redraw()

    if has_field:
        @state.change("level")
        def _level(level, **_):
            scene.set_level(float(level), coarse=True)
            redraw()

        def released(level):
            scene.set_level(float(level))
            redraw()

        ctrl.level_released = released

    def toggle_help():
        scene.toggle_help()
        redraw()

    def save_png():
        state.picked = f"saved {key_screenshot(scene)} (on the server)"
        redraw()

    ctrl.toggle_help = toggle_help
    ctrl.save_png = save_png

    def picked(fx, fy):
        out = pick_at(scene, float(fx), float(fy))
        state.picked = measures.probe_text(out) if out is not None else "nothing under the cursor"
        redraw()

    ctrl.pick_at = picked
    actions = key_actions(scene)

    @ctrl.trigger(KEY_TRIGGER)
    def key(name):
        """A key of the window's (``KEYS``), pressed on the page: the same action, then the
        page's boxes set to match the scene."""
        if name == "o":
            save_png()
            return
        if name not in actions:
            return
        actions[name]()
        for layer, shown in scene.visible.items():
            state[f"show_{layer}"] = shown
        state.errors = scene.mesh_coloring in ("gt", "input")
        state.clip = scene.clip is not None
        if scene.field is not None:
            state.level = scene.level
        redraw()

    return view
