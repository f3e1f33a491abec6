"""What the picture grid shows, and what can be done with one of its pictures.

The grid shows either the storyboard's newest pictures (tiles of the running job's pictures are
left to its live previews, which :class:`~.run_controller.RunController` sends here) or one run
of the history (``viewing_run``). Per picture: view full size (``grid/viewer.py``), save as,
copy, use as reference.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from ...engine.anchor_files import anchor_file
from ...engine.events import picture_key
from ...engine.runfolder import reference_file
from ...session import observer
from ...session.errors import SessionError
from ...session.history import RunPlan, RunRecord, panel_file_name
from ...session.model import compose_prompt
from ..grid import (
    HistoryView,
    ImageViewer,
    OpenViewers,
    PreviewGrid,
    ViewerPicture,
    anchor_tile,
    is_anchor,
    is_reference,
    mask_overlay,
    reference_position,
    run_title,
    tile_name,
)
from ..threads import ThumbnailLoader
from .export import SheetItem
from .host import APP_TITLE, Host

GRID_IMAGE = 640
"""Pictures in the grid are decoded at most this large (the full size opens on click)."""


class GridController(QObject):
    """See the module docstring. ``running_plan()`` is the plan of the job drawing now, if any."""

    def __init__(self, host: Host, grid: PreviewGrid, history: HistoryView, viewing_bar,
                 viewing_label, thumbnails: ThumbnailLoader,
                 running_plan: Callable[[], RunPlan | None], parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.grid = grid
        self.history = history
        self.viewing_bar = viewing_bar
        self.viewing_label = viewing_label
        self.thumbnails = thumbnails
        self.running_plan = running_plan
        self.viewing_run: str | None = None
        self.viewers = OpenViewers()  # live previews follow in them
        self._preview_sizes: dict = {}  # the size of the picture each tile's live preview is of
        self.masks: dict[str, dict] = {}
        """Panel id -> its newest picture's last-step subject masks by character name (spec
        section 13; arrays, as the engine's result gives them)."""
        self.showing_masks = False
        self.anchors: dict[tuple, QImage] = {}
        """The characters' newest anchors by key ("anchor", name, k), as the engine sent them."""
        thumbnails.ready.connect(self._thumbnail_ready)
        grid.view_requested.connect(self.view_picture)
        grid.save_requested.connect(self.save_picture)
        grid.copy_requested.connect(self.copy_picture)
        grid.use_as_reference_requested.connect(self.use_as_reference)
        history.run_selected.connect(self.show_run)
        history.restore_requested.connect(self.restore_run)
        history.delete_requested.connect(self.delete_run)

    @property
    def session(self):
        return self.host.session

    # ----- following the session ------------------------------------------------------------
    def reset(self) -> None:
        """A new session: back to the storyboard's pictures."""
        self.viewing_run = None
        self.masks.clear()
        self.anchors.clear()
        self.viewing_bar.hide()
        self.grid.clear()
        self.refresh()

    def on_session_change(self, change: observer.Change) -> None:
        kind = change.kind
        if kind in (observer.PANELS, observer.PANEL, observer.HISTORY, observer.STYLE,
                    observer.CHARACTERS) and self.viewing_run is None:
            self.refresh()
        if kind == observer.HISTORY and self.viewing_run is not None:
            try:
                self.session.run(self.viewing_run)
            except SessionError:
                self.show_run(None)

    # ----- the storyboard's newest pictures ---------------------------------------------------
    def _reference_outdated(self, record: RunRecord, position: int) -> bool:
        """Reference ``position`` of ``record`` is not what Generate would use now."""
        sources, style = self.session.active_sources, self.session.style
        if len(record.references) != len(sources) or position >= len(sources):
            return True
        made, (active, _weight) = record.references[position], sources[position]
        if active is not None:
            return (made.kind != "picture" or made.reference_id != active.id
                    or made.caption != active.caption)
        return (made.kind != "generated" or made.seed != style.reference_seed
                or made.prompt != compose_prompt(style.reference_prompt, style.text))

    def _reference_tiles(self) -> list[tuple[str, str]]:
        """(title, prompt) of every active reference, in the style's order, with its share of
        the style when there are several (spec section 11)."""
        style = self.session.style
        sources = self.session.active_sources
        total = sum(weight for _, weight in sources)
        tiles = []
        for reference, weight in sources:
            title = "Reference" if reference is None else "Reference (picture)"
            if len(sources) > 1:
                title += f" · {round(100 * weight / total)} %"
            prompt = (reference.caption or reference.name) if reference is not None else (
                ", ".join(t for t in (style.reference_prompt.strip(), style.text.strip()) if t))
            tiles.append((title, prompt))
        return tiles

    def _panel_sizes(self, sizes) -> list[tuple[int, int]]:
        settings = self.session.settings
        return [size or (settings.width, settings.height) for size in sizes]

    def refresh(self) -> None:
        """Show the storyboard's newest pictures (or the history run being viewed)."""
        if self.session is None:
            return
        if self.viewing_run is not None:
            self._show_record(self.session.run(self.viewing_run))
            return
        panels = self.session.panels
        settings = self.session.settings
        self.grid.set_panels([p.prompt for p in panels], references=self._reference_tiles(),
                             sizes=self._panel_sizes([p.size for p in panels]),
                             reference_size=(settings.width, settings.height),
                             anchors=self._anchor_tiles())
        running = self.running_plan()
        self._show_anchors(running)
        references, latest = self.session.newest_pictures()
        if running is None or not running.selected:
            for key in [k for k in self.grid.tiles if is_reference(k)]:
                position = reference_position(key)
                found = references.get(position)
                unused = self.session.active_sources[position][1] == 0
                if found is None:
                    self._set_tile_file(key, None, "", "weight 0: not used" if unused else "not generated yet")
                else:
                    outdated = self._reference_outdated(found[1], position)
                    self._set_tile_file(key, found[0], "outdated" if outdated else "")
        for index, panel in enumerate(panels):
            if running is not None and panel.id in running.panel_ids and \
                    running.panel_ids.index(panel.id) in running.selected:
                continue  # live previews own this tile
            found = latest.get(panel.id)
            if found is None:
                self.grid.tiles[index].path = None
                self.grid.tiles[index].clear("not generated yet")
                continue
            path, record = found
            run_panel = record.panel(panel.id)
            outdated = run_panel is not None and (run_panel.seed != panel.seed
                                                  or run_panel.subject != panel.prompt.strip()
                                                  or run_panel.size != panel.size)
            self._set_tile_file(index, path, "outdated" if outdated else "")
        self._show_masks()

    # ----- the characters' anchors and subject masks ----------------------------------------------
    def _anchor_tiles(self) -> list[tuple[tuple, str, str]]:
        """(key, title, prompt) of each character's anchors, as the engine keys them."""
        count = self.session.character_settings.anchors_per_character
        return [anchor_tile(c.name, k, c.description) for c in self.session.characters for k in range(count)]

    def _show_anchors(self, running: RunPlan | None) -> None:
        if running is not None:
            return  # a running set's anchors come live from the run controller
        on_disk = self.session.newest_anchors()  # after a reopen, the engine's are gone
        for key, tile in [(k, t) for k, t in self.grid.tiles.items() if is_anchor(k)]:
            image = self.anchors.get(key)
            if image is None and (key[1], key[2]) in on_disk:
                path, made = on_disk[key[1], key[2]]
                outdated = not made.drew_the_same(self.session.character(key[1]), key[2])
                self._set_tile_file(key, path, "outdated" if outdated else "")
            elif image is None:
                tile.clear("not generated yet")
            elif tile.image() is not image:
                tile.set_final(image, "")

    def take_anchor(self, key: tuple, image: QImage, mask=None) -> None:
        """A character's anchor came from the engine (with its subject mask)."""
        self.anchors[key] = image
        if mask is not None:
            self.masks[key] = {key[1]: mask}
        if key in self.grid.tiles and self.viewing_run is None:
            self.grid.show_final(key, image, "new")
            self._show_masks()

    def take_masks(self, panel_id: str | None, masks) -> None:
        """A panel's new picture came with its subject masks (by character name)."""
        if panel_id is not None and masks:
            self.masks[panel_id] = dict(masks)
            self._show_masks()

    def set_show_masks(self, on: bool) -> None:
        """Overlay each panel's subject masks on its picture (View → Show subject masks)."""
        self.showing_masks = bool(on)
        self._show_masks()

    def _show_masks(self) -> None:
        panels = self.session.panels if self.session is not None else ()
        for index, tile in self.grid.tiles.items():
            masks = None
            if self.showing_masks and self.viewing_run is None:
                if isinstance(index, int) and index < len(panels):
                    masks = self.masks.get(panels[index].id)
                elif is_anchor(index):
                    masks = self.masks.get(index)
            names = [c.name for c in self.session.characters] if self.session else []
            tile.view.set_overlay(mask_overlay(masks, names) if masks else None)

    def _set_tile_file(self, index, path: Path | None, state: str,
                       missing: str = "not generated yet") -> None:
        tile = self.grid.tiles.get(index)
        if tile is None:
            return
        if path is None or not path.is_file():
            tile.path = None
            tile.clear(missing)
            return
        if getattr(tile, "path", None) != path or tile.image() is None:
            tile.path = path
            image = self.thumbnails.request(path, GRID_IMAGE)
            if image is not None and not image.isNull():
                tile.set_final(image, state)
            else:
                tile.final = True
                tile.set_state("loading…")
        else:
            tile.set_state(state)
        tile.set_outdated(state == "outdated")
        changed = "style" if is_reference(index) else "prompt, seed or size"
        tile.setToolTip(f"The {changed} changed since this picture was made"
                        if state == "outdated" else "")

    def _thumbnail_ready(self, path: str, size: int, image: QImage) -> None:
        if size != GRID_IMAGE or image.isNull():
            return
        for tile in self.grid.tiles.values():
            if getattr(tile, "path", None) is not None and str(tile.path) == path:
                state = tile.state.text()
                tile.set_final(image, "" if state == "loading…" else state)

    # ----- a running job's tiles (from the run controller) --------------------------------------
    def mark_waiting(self, tile) -> None:
        self.grid.set_state(tile, "waiting")

    def show_preview(self, tile, image: QImage, step: int, total: int, size: tuple[int, int] | None = None) -> None:
        """A running picture's preview; ``size``: the picture's, at which the viewer shows it."""
        if self.viewing_run is None:
            self.grid.show_preview(tile, image, step, total)
            self._preview_sizes[tile] = size
            self.viewers.replace(tile, self._preview_picture(tile, image))

    def show_final(self, tile, image: QImage, caption: str, path: Path | None) -> None:
        """A finished picture; ``path`` is None while its file is not written yet."""
        self.grid.show_final(tile, image, caption)
        self.grid.tiles[tile].path = path
        self.grid.tiles[tile].set_outdated(False)  # made from the settings of now
        if self.viewing_run is None:  # the full VAE's picture replaces its preview in a viewer too
            self.viewers.replace(tile, ViewerPicture(tile_name(tile), None, image, self._picture_key(tile)))

    def _preview_picture(self, tile, image: QImage) -> ViewerPicture:
        """A tile's live preview for the viewer, shown at the picture's full size."""
        size = self._preview_sizes.get(tile) or self.grid.tiles[tile].view.shape()
        return ViewerPicture(tile_name(tile) + " (preview)", None, image, self._picture_key(tile), size)

    # ----- history runs -------------------------------------------------------------------------
    def show_run(self, run_id: str | None) -> None:
        """Show a history run's pictures in the grid (None: back to the storyboard)."""
        if self.session is None:
            return
        if run_id is not None and self.running_plan() is not None:
            self.host.show_message("A generation is running: its live previews stay in view")
            self.history.clear_selection()
            return
        self.viewing_run = run_id
        if run_id is None:
            self.viewing_bar.hide()
            self.history.clear_selection()
            self.grid.clear()
            for tile in self.grid.tiles.values():
                tile.path = None
            self.refresh()
            return
        record = self.session.run(run_id)
        self.viewing_label.setText(f"Showing the run of {run_title(record)}")
        self.viewing_bar.show()
        self._show_record(record)

    def _show_record(self, record: RunRecord) -> None:
        prompts = [p.subject or p.prompt for p in record.panels]
        several = len(record.references) > 1
        references = [("Reference" + (f" · {round(100 * x.weight)} %" if several else ""),
                       x.caption if x.kind == "picture" else x.prompt) for x in record.references]
        settings = record.settings
        anchors = [anchor_tile(c.character.name, k, c.character.description)
                   for c in record.characters for k in range(len(c.images))]
        self.grid.set_panels(prompts, references=references,
                             sizes=self._panel_sizes([p.size for p in record.panels]),
                             reference_size=(settings.width, settings.height), anchors=anchors)
        files = dict(record.images())
        files.update({picture_key(None, k): file for k, file in record.reference_images()})
        files.update({("anchor", name, k): file for name, k, file in record.anchor_images()})
        for tile_index, tile in self.grid.tiles.items():
            relative = files.get(tile_index)
            if relative is None:
                tile.path = None
                tile.clear("not in this run")
            else:
                self._set_tile_file(tile_index, self.session.path(relative), "")
        self._show_masks()  # a past run's masks are not kept: none over its pictures

    def restore_viewed_run(self) -> None:
        self.restore_run(self.viewing_run)

    def restore_run(self, run_id: str | None) -> None:
        if self.session is None or run_id is None:
            return
        try:
            notes = self.session.restore_run(run_id, settings=True, seeds=True)
        except SessionError as exc:
            self.host.show_message(str(exc), True)
            return
        self.show_run(None)
        text = "Restored the run's settings, style and seeds (seeds locked)"
        self.host.show_message(text + (": " + "; ".join(notes) if notes else ""), bool(notes))

    def delete_run(self, run_id: str) -> None:
        if self.session is None:
            return
        choice = self.host.ask("Delete this run?", "Delete the run and its pictures from the "
                               "session folder?", ["Delete", "Cancel"], default="Cancel")
        if choice == "Delete":
            self.session.remove_run(run_id)
            if self.viewing_run == run_id:
                self.show_run(None)

    # ----- per-picture actions ------------------------------------------------------------------
    def tile_path(self, index) -> Path | None:
        tile = self.grid.tiles.get(index)
        path = getattr(tile, "path", None) if tile is not None else None
        return path if path is not None and Path(path).is_file() else None

    def _tile_order(self) -> list:
        references = sorted((k for k in self.grid.tiles if is_reference(k)), key=reference_position)
        anchors = [k for k in self.grid.tiles if is_anchor(k)]  # in the characters' order
        return [*references, *anchors, *sorted(i for i in self.grid.tiles if isinstance(i, int))]

    def shown_items(self) -> list[SheetItem]:
        """The finished pictures in the grid, in order, as export items."""
        items = []
        for index in self._tile_order():
            path = self.tile_path(index)
            if path is None:
                continue
            tile = self.grid.tiles[index]
            name = (reference_file(reference_position(index)) if is_reference(index)
                    else anchor_file(index[1], index[2]) if is_anchor(index) else panel_file_name(index))
            items.append(SheetItem(tile_name(index), tile.prompt.text(), path, name))
        return items

    def _picture_key(self, index) -> str | None:
        """Which picture of a set a tile shows: ``reference``, an anchor or its panel's id."""
        if is_anchor(index):
            return f"anchor-{index[1]}-{index[2]}"
        if is_reference(index):
            return f"reference-{reference_position(index)}"
        if self.viewing_run is not None:
            panels = self.session.run(self.viewing_run).panels
            return panels[index].panel_id if index < len(panels) else None
        panels = self.session.panels
        return panels[index].id if index < len(panels) else None

    def viewer_pictures(self) -> list[tuple[int | None, ViewerPicture]]:
        """(tile, picture) of every tile showing a picture: its file, or a live preview."""
        shown = []
        for index in self._tile_order():
            path = self.tile_path(index)
            image = self.grid.tiles[index].image()
            if path is None and (image is None or image.isNull()):
                continue
            if path is None and not self.grid.tiles[index].final:
                shown.append((index, self._preview_picture(index, image)))
            else:
                shown.append((index, ViewerPicture(tile_name(index), path, None if path else image,
                                                   self._picture_key(index))))
        return shown

    def versions(self, picture: ViewerPicture) -> list[ViewerPicture]:
        """The same picture (the reference, or one panel) in the other finished runs, newest
        first: what the viewer offers to compare a picture with."""
        if self.session is None or picture.key is None:
            return []
        name = picture.title.removesuffix(" (preview)")
        found = []
        for record in reversed(self.session.history):
            if record.status != "finished":
                continue
            if picture.key.startswith("reference-"):
                files = dict(record.reference_images())
                file = files.get(int(picture.key.removeprefix("reference-")))
                file = file.removeprefix(f"{record.folder}/") if file else None
            else:
                run_panel = record.panel(picture.key)
                file = run_panel.file if run_panel is not None else None
            path = self.session.path(f"{record.folder}/{file}") if file else None
            if path is not None and path != picture.path and path.is_file():
                found.append(ViewerPicture(f"{name} · run of {run_title(record)}", path,
                                           key=picture.key))
        return found

    def view_picture(self, index) -> ImageViewer | None:
        """The full-size viewer on the tile ``index``, able to step through the shown set."""
        shown = self.viewer_pictures()
        positions = [tile for tile, _ in shown]
        if index not in positions:
            return None
        viewer = ImageViewer([picture for _, picture in shown], positions.index(index),
                             self.host, versions=self.versions, window_title=APP_TITLE)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.viewers.add(viewer, positions)
        viewer.show()
        return viewer

    def save_picture(self, index, target: str | None = None) -> Path | None:
        path = self.tile_path(index)
        if path is None:
            self.host.show_message("That picture is not finished yet", True)
            return None
        config = self.host.config
        if target is None:
            stem = Path(reference_file(reference_position(index)) if is_reference(index)
                        else panel_file_name(index)).stem
            suggested = str(Path(config.export_folder or Path.home()) / f"{stem}.png")
            target, _ = QFileDialog.getSaveFileName(
                self.host, "Save picture as", suggested,
                "PNG with its parameters (*.png);;JPEG (*.jpg *.jpeg);;WebP (*.webp)")
            if not target:
                return None
        target_path = Path(target)
        try:
            if target_path.suffix.lower() in ("", ".png"):
                target_path = target_path.with_suffix(".png")
                shutil.copyfile(path, target_path)  # keeps the PNG's parameters chunk
            elif not QImage(str(path)).save(str(target_path)):
                raise OSError(f"cannot write {target_path.name}")
        except OSError as exc:
            self.host.show_message(f"Could not save {target_path}: {exc}", True)
            return None
        config.export_folder = str(target_path.parent)
        self.host.show_message(f"Saved {target_path}")
        return target_path

    def copy_picture(self, index) -> None:
        path = self.tile_path(index)
        if path is None:
            return
        QGuiApplication.clipboard().setImage(QImage(str(path)))
        self.host.show_message(f"Copied {tile_name(index).lower()} to the clipboard")

    def use_as_reference(self, index) -> None:
        path = self.tile_path(index)
        if path is None or self.session is None:
            return
        try:
            reference = self.session.add_reference(path)
            caption = ""
            if not is_reference(index) and self.viewing_run is None:
                caption = self.session.panels[index].prompt.strip()
            if caption and not reference.caption:
                self.session.set_reference_caption(reference.id, caption)
            self.session.set_active_reference(reference.id)
        except SessionError as exc:
            self.host.show_message(str(exc), True)
            return
        self.host.show_message(f"{tile_name(index)} is now the style reference")
