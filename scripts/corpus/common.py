"""What every source reader yields, the shared category vocabulary, and axis conversion to Z-up."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

# Name keywords -> category, first match wins (so "table lamp" is a lamp and "armchair" is not a chair).
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    ("lamp", r"lamps?|light|lantern|chandelier|candelabr\w*|farola|streetlight|trafficlight"),
    ("armchair", r"armchairs?"),
    ("sofa", r"sofas?|couch|settee|futon"),
    ("chair", r"chairs?|stools?|silla|seats?"),
    ("bench", r"bench|bank\d*"),
    ("table", r"tables?|desks?|comptable|parktable"),
    ("bed", r"beds?|crib|campbed|cot|hammock"),
    ("cabinet", r"cabinets?|wardrobe|closet|cupboard|dresser|drawers?|lockers?|shelf|shelves|bookcase|vanity"),
    ("aircraft", r"\w*plane|aircraft|helicopter|heli|jet|glider|airliner|"
                 r"ufo|biplane"),
    ("ship", r"ship|boat|trireme|bireme|quinquereme|longship|galley|yacht|hovercraft|warship|fishing"),
    ("car", r"cars?|sedan|suv|van|chevrolet|peugeot|renault|leon|smart|jeep|taxi|hatchback|coupe|limo\w*|"
            r"convertible|pickup|buggy"),
    ("truck", r"trucks?|lorry|bus|citybus|tanker|forklift|lift|abrams|tank|alientank|tractor|humvee"),
    ("train", r"trains?|locomotive|coach|wagon|railcar|tender"),
    ("motorbike", r"motorbike|scooter\d*|yamaha\w*|bicycle|tricycle|bike"),
    ("cart", r"cart|carriage|pushcart|wheelbarrow|chariot"),
    ("siege_engine", r"ram|ballista|onager|catapult|scorpio|lithobolos|sambuca|oxybeles|trebuchet"),
    ("helmet", r"helmets?|helm"),
    ("shield", r"shields?|aspis|scutum|pelta"),
    ("horse", r"horses?|mare|pony"),
    ("elephant", r"elephants?"),
    ("bottle", r"bottles?|flacon|carafe|jug"),
    ("vase", r"vases?|pots?|pottery|jars?|urn|flowerpot\d*|maceta"),
    ("tableware", r"cups?|mugs?|glass|glasses|bowls?|plates?|dish\w*|tray|teapot|creamer|fork|spoon|"
                  r"kettle|saucepan|pan|coffeemaker|coffee_machine"),
    ("container", r"barrels?|crates?|box\w*|containers?|sacks?|amphorae?|baskets?|chests?|bins?|dustbin|"
                  r"garbagecan|gaz|gas|"
                  r"oiltank|cylinder|gascylinder|bucket"),
    ("weapon", r"swords?|spears?|axe|bow|crossbow|pistol\d*|rifle|\w*gun|cannon|autocannon|launcher|"
               r"knife\w*|blade|grenade|\w*gren|rpg\d*|smg|shotgun\w*|sniper|flamer|\w*blaster|bolterrifle|"
               r"laserrifle|laserpistol|needlergun|xaw95|javelin|jav|dagger|maces?|club|sling|weap|gladius|falcata|"
               r"xiphos|sagaris|kopis|lance|csword|electrolaser|plasblade|pbeampistol|plasrifle"),
    ("animal", r"dog|cat|rabbit|deer|chicken|pig|piglet|sheep|goat|cow|bull|wolf|bear|lion|fox|boar|crocodile|"
               r"donkey|mastiff|seagull|zebu|cattle|"
               r"fish\d*|shark|whale|dolphin|spider|bloodspider|muskox|camel|zebra|giraffe|rhino|hippo|"
               r"gazelle|wildebeest|ostrich|peacock|duck|walrus|seal|penguin|hawk|eagle|rat|bird|camel"),
    ("pile", r"piles?|hay|woodcord|logs?|planks?|firewood"),
    ("bush", r"bush\w*|shrub|hedge\w*|fern\w*|grass|plants?|flowers?|cactus|tulips?|orchids?|lavender|"
             r"vegi|papyrus|reeds?|cattails|berry|berries|mushrooms?|calla\w*|bonsai"),
    ("tree", r"trees?|oak\w*|pines?\w*|palms?|birch|cypress|fir|maple|baobab|poplar|deciduous|cedar|acacia|"
             r"beech|bamboo|willow|olive|juniper|banyan|mangrove|kapok|ficus\w*|yew|sycamore\w*|"
             r"coconut\w*|sabal\w*|copper\w*|peach\w*|japanesemaple|christmas|carob|tamarix|teak|senegal|"
             r"elm|aleppo|larch|spruce"),
    ("rock", r"rocks?|stones?|boulder|geo|cliff|mineral|crag"),
    ("statue", r"statues?|sculpture|bust|sphinx|sphynx"),
    ("tool", r"tools?|hoe|scythe|tongs|shovel|hammer|marteau|saw|drill|screwdriver|tournevis|wrench|rake|"
             r"pitchfork|broom|pince\w*|meuleuse\w*|perceuse\w*|scie\w*"),
    ("building", r"house|temple|barracks|fortress|tower|market|storehouse|farmstead|dock|stable|civic|"
                 r"cc|tc|fc|hc|academy|forge|apartment|embassy|superdock|mausoleum|gerousia|settlements?|"
                 r"crannog|kennel|stonehenge|gardens|watertower|"
                 r"centre|center|workshop|blacksmith|wonder|gate|wall|library|theat\w*|gymnasium|range|"
                 r"corral|palace|hut|tent|shrine|building|church|chapel|hangar|warehouse|garage|station|"
                 r"lighthouse|windmill|mill|arsenal|castle|monument|arch|pantheon|colonnade|stoa|"
                 r"amphitheat\w*|sentry|outpost|fort|palisade|camp|farm|granary|silo|kiosk|shed|"
                 r"doghouse|tipi|yurt|cabin|pavilion|bridge|well|fountain|obelisk|pyramid|ziggurat"),
    ("person", r"male|female|man|woman|girl|boy|mannequin\w*|character|soldier|civilian|people|"
               r"sitting|holding|lying|child|baby|pilot|tunic|dress|pants|naked"),
    ("appliance", r"oven|fridge|refrigerator|freezer|washing|washer|dryer|dishwasher|cooker|stove|"
                  r"microwave|toaster|boiler|heater|radiator|furnace|conditioning|fan|mixer|squeezer|generator|rangehood"),
    ("electronics", r"tv|television|computer|monitor|laptop|phone|iphone|printer|speaker|stereo|"
                    r"camera|projector|radio|playstation\w*|console|tablet|switchboard|dvd|amplifier"),
    ("bathroom", r"toilets?|wc|bath\w*|bathtub|shower|washbasin|basin|sink|urinal|bidet|jacuzzi|lavatory"),
    ("fence", r"fences?|railing|balustrade|palisades?"),
    ("staircase", r"stairs?|staircase|ladder|escalator"),
    ("door_window", r"doors?|windows?"),
    ("instrument", r"piano|guitar|drum|violin|harp"),
)
_COMPILED = tuple((label, re.compile(rf"^(?:{pattern})$")) for label, pattern in CATEGORY_RULES)


def words(text: str) -> list[str]:
    """Lower-case words of a name or path: camelCase, digits, '_', '-', '.', '/' and spaces split words."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def categorise(*names: str) -> str | None:
    """The first category whose keyword is a word of the names (tried in order); None when none fits."""
    for name in names:
        tokens = words(name)
        for label, pattern in _COMPILED:
            if any(pattern.match(t) for t in tokens):
                return label
    return None


MeshArrays = tuple[np.ndarray, np.ndarray]  # (vertices (V, 3) float, faces (F, 3) int)
Reader = Callable[[], MeshArrays]

Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # (x, y, z) -> (x, -z, y)


@dataclass
class Candidate:
    """One object mesh a source offers: where it came from, its label, and how to read it (lazily)."""

    source: str                 # Debian package name
    path: str                   # original path inside the package (archive member paths after '!')
    category: str | None        # None: no category fits; the builder records it and skips the mesh
    licence: str
    read: Reader = field(repr=False)
    rotation: np.ndarray | None = None   # applied to vertices first (a catalogue's model rotation)
    up: str = "z"                        # the source's up axis after `rotation`: "y" or "z"
    reject: str | None = None            # a reason known from the name alone (LOD copy, effect, part, ...)
    title: str = ""                      # a human-readable name (catalogue name or file stem)
    size: tuple[float, float, float] | None = None  # real (x, y, z) size in metres a catalogue gives, Z-up frame

    def metres_per_unit(self, vertices: np.ndarray, default: float) -> float:
        """The factor that brings `vertices` (as load() returns them) to metres: the uniform scale that best
        fits their bounding box to the catalogue's `size` (geometric mean over the axes), else `default`."""
        if self.size is None:
            return default
        extent, size = np.ptp(vertices, axis=0), np.asarray(self.size, dtype=np.float64)
        usable = (extent > 0) & (size > 0)
        if not usable.any():
            return default
        return float(np.exp(np.mean(np.log(size[usable] / extent[usable]))))

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertices in the backend's Z-up frame and faces, read from the package."""
        vertices, faces = self.read()
        vertices = np.asarray(vertices, dtype=np.float64)
        if self.rotation is not None:
            vertices = vertices @ np.asarray(self.rotation, dtype=np.float64).T
        if self.up == "y":
            vertices = vertices @ Y_UP_TO_Z_UP.T
        elif self.up != "z":
            raise ValueError(f"up axis must be 'y' or 'z', got {self.up!r}")
        return vertices, np.asarray(faces, dtype=np.int64)


@lru_cache(maxsize=8)
def open_zip(path: Path) -> zipfile.ZipFile:
    """One open handle per archive: large archives (0ad's holds 36 000 files) are indexed only once."""
    return zipfile.ZipFile(path)
