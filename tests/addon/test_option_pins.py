"""The add-on's copies of every request option (it never imports the backend) pinned to backend/options.py:
the sidebar's settings (Scene.atlasvae) and each operator's own options, their bounds, choices and the
add-on's declared default."""

from __future__ import annotations

from typing import Any

import pytest

from backend import options as o

SCENE = [("count", o.COUNT), ("seed", o.SEED), ("temperature", o.TEMPERATURE), ("custom_resolution", o.RESOLUTION),
         ("size", o.SIZE), ("surface", o.SURFACE), ("face_budget", o.FACE_BUDGET), ("fit", o.FIT),
         ("endpoint_fit", o.SHARED_FIT), ("steps", o.STEPS), ("variation_count", o.VARIATION_COUNT),
         ("spread", o.SPREAD), ("variation_seed", o.SEED), ("finetune_epochs", o.EPOCHS)]
OPERATORS = [("sample", "count", o.COUNT), ("sample", "seed", o.SEED), ("sample", "temperature", o.TEMPERATURE),
             ("sample", "size", o.SIZE), ("sample", "resolution", o.RESOLUTION), ("sample", "surface", o.SURFACE),
             ("sample", "face_budget", o.FACE_BUDGET), ("reconstruct", "fit", o.FIT),
             ("reconstruct", "fit_steps", o.FIT_STEPS), ("reconstruct", "resolution", o.RESOLUTION),
             ("interpolate", "steps", o.STEPS), ("interpolate", "fit", o.SHARED_FIT),
             ("variations", "count", o.VARIATION_COUNT), ("variations", "spread", o.SPREAD),
             ("variations", "seed", o.SEED), ("variations", "fit", o.SHARED_FIT),
             ("finetune_start", "epochs", o.EPOCHS)]
EXPLORER = [("amounts", o.AMOUNT), ("blend", o.BLEND)]  # the Explorer's sliders (WindowManager.atlasvae_explorer)


def assert_pinned(prop: Any, option: o.Option) -> None:
    """One Blender property against its option: enum identifiers are the choices; numbers keep within the
    bounds (Blender's int tops out below MAX_SEED; the add-on's 0 fit steps is the declared "mode's default")."""
    assert prop.default == option.addon_default, prop.identifier
    if option.choices is not None:
        assert tuple(item.identifier for item in prop.enum_items) == option.choices, prop.identifier
        return
    low = option.addon_default if option.addon_default is not None and option.addon_default < option.minimum \
        else option.minimum
    assert prop.hard_min == pytest.approx(low), prop.identifier
    if prop.hard_max < option.maximum:
        assert option is o.SEED and prop.hard_max == 2**31 - 1, prop.identifier
    else:
        assert prop.hard_max == pytest.approx(option.maximum), prop.identifier


@pytest.mark.parametrize("name,option", SCENE, ids=[n for n, _ in SCENE])
def test_sidebar_settings_are_the_declared_options(addon: Any, bpy_module: Any, name: str, option: o.Option) -> None:
    assert_pinned(bpy_module.context.scene.atlasvae.bl_rna.properties[name], option)


@pytest.mark.parametrize("op,name,option", OPERATORS, ids=[f"{op}-{n}" for op, n, _ in OPERATORS])
def test_operator_options_are_the_declared_options(addon: Any, bpy_module: Any, op: str, name: str,
                                                   option: o.Option) -> None:
    assert_pinned(getattr(bpy_module.ops.atlasvae, op).get_rna_type().properties[name], option)


@pytest.mark.parametrize("name,option", EXPLORER, ids=[n for n, _ in EXPLORER])
def test_explorer_sliders_are_the_declared_options(addon: Any, bpy_module: Any, name: str, option: o.Option) -> None:
    assert_pinned(bpy_module.context.window_manager.atlasvae_explorer.bl_rna.properties[name], option)


def test_explorer_has_a_slider_for_every_direction_the_backend_may_offer(addon: Any, bpy_module: Any) -> None:
    from backend.limits import MAX_DIRECTIONS
    from blender_addon.bpyfree.explorer import MAX_SLIDERS

    assert MAX_SLIDERS == MAX_DIRECTIONS
    assert bpy_module.context.window_manager.atlasvae_explorer.bl_rna.properties["amounts"].array_length == MAX_SLIDERS


def test_resolution_preset_and_family_defaults_are_the_declared_ones(addon: Any, bpy_module: Any) -> None:
    from blender_addon import properties

    settings = bpy_module.context.scene.atlasvae.bl_rna.properties
    assert settings["resolution_preset"].default == str(o.RESOLUTION.addon_default)
    assert properties.ANY_FAMILY == o.LABEL.addon_default


def test_every_option_the_add_on_offers_is_pinned() -> None:
    """A new option in backend/options.py fails here until its add-on copies are added to the lists above."""
    pinned = ({id(option) for _name, option in SCENE + EXPLORER}
              | {id(option) for _op, _name, option in OPERATORS})
    offered = [value for value in vars(o).values()
               if isinstance(value, o.Option) and value.addon is not o.ABSENT and value is not o.LABEL]
    assert [option.name for option in offered if id(option) not in pinned] == []
