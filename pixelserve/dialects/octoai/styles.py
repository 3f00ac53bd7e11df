"""OctoAI ``style_preset`` names (exact strings, as the SDK lists them) and our prompt templates.

OctoAI does not publish what its presets do; these templates are pixelserve's own. Each is
``(prompt template, negative prompt)``: ``{prompt}`` is replaced by the request's prompt (plain
text substitution, so braces in a prompt are safe), and the negative prompt is put before the
request's own. No template uses brackets or colons, so prompt weighting reads them as plain text.
"""

from __future__ import annotations

from pixelserve.core.request import StyleTemplate

_PHOTO_NEG = "drawing, painting, illustration, cartoon, anime, sketch, low quality, blurry"
_ART_NEG = "photo, photorealistic, realism, low quality, blurry"
_GAME_NEG = "photo, photorealistic, blurry, low resolution, watermark"
_PAPER_NEG = "photo, photorealistic, 3d render, glossy, blurry, noisy"

STYLES: dict[str, tuple[str, str]] = {
    "base": ("{prompt}", ""),
    "3d-model": ("3d model of {prompt}, clean topology, studio lighting, octane render, highly detailed",
                 "flat, 2d, sketch, painting, noisy, blurry"),
    "analog-film": ("analog film photograph of {prompt}, faded colours, film grain, soft vignette, nostalgic",
                    "digital, oversaturated, cartoon, painting, deformed"),
    "anime": ("anime artwork of {prompt}, anime style, cel shading, vibrant colours, clean line art",
              "photo, realistic, 3d render, deformed, blurry"),
    "cinematic": ("cinematic film still of {prompt}, shallow depth of field, dramatic lighting, anamorphic, "
                  "film grain, moody", "cartoon, drawing, anime, sketch, flat lighting, low quality"),
    "comic-book": ("comic book panel of {prompt}, bold ink outlines, halftone shading, vivid flat colours",
                   "photo, realistic, 3d render, blurry, washed out"),
    "Craft Clay": ("handmade clay sculpture of {prompt}, claymation, visible fingerprints, soft studio light",
                   "photo of a real person, sketch, flat, blurry"),
    "modeling-compound": ("{prompt} sculpted from modelling compound, plasticine, playful, soft shadows",
                          "photo, realistic, drawing, blurry"),
    "digital-art": ("digital painting of {prompt}, concept art, detailed brushwork, vibrant",
                    "photo, photorealistic, low quality, blurry"),
    "enhance": ("breathtaking {prompt}, award-winning, professional, highly detailed, sharp focus",
                "ugly, deformed, noisy, blurry, distorted, low quality"),
    "fantasy-art": ("fantasy illustration of {prompt}, magical atmosphere, epic, intricate, painterly",
                    "photo, modern, mundane, low quality, blurry"),
    "isometric": ("isometric view of {prompt}, isometric game art, clean geometry, soft shadows, detailed",
                  "perspective distortion, photo, blurry, deformed"),
    "line-art": ("line art drawing of {prompt}, clean black lines on white, minimal shading, precise",
                 "photo, colourful, painting, 3d render, blurry, noisy"),
    "low-poly": ("low-poly 3d render of {prompt}, faceted polygons, flat shading, geometric, minimal",
                 "photo, smooth, high poly, noisy, blurry"),
    "neon-punk": ("neonpunk style {prompt}, glowing neon lights, cyberpunk city, magenta and cyan, vivid",
                  "dull colours, daylight, painting, low contrast, blurry"),
    "origami": ("origami paper sculpture of {prompt}, folded paper, crisp creases, studio backdrop",
                "photo of a real object, painting, noisy, blurry"),
    "photographic": ("photograph of {prompt}, 35mm, natural light, highly detailed, sharp focus", _PHOTO_NEG),
    "pixel-art": ("pixel art of {prompt}, 16-bit sprite, limited palette, crisp pixels",
                  "smooth, photo, realistic, blurry, anti-aliased"),
    "tile-texture": ("seamless tileable texture of {prompt}, top-down, even lighting, repeating pattern",
                     "perspective, objects, vignette, seams, blurry"),
    "Advertising": ("advertising photo of {prompt}, product shot, clean backdrop, commercial lighting, "
                    "polished", "amateur, cluttered, noisy, low quality, blurry"),
    "Food Photography": ("food photography of {prompt}, appetising, shallow depth of field, warm light, "
                         "styled plate", "unappetising, messy, cartoon, low quality, blurry"),
    "Real Estate": ("real estate photo of {prompt}, wide angle interior, bright natural light, tidy, inviting",
                    "dark, cluttered, distorted, cartoon, blurry"),
    "Abstract": ("abstract artwork of {prompt}, non-representational shapes, bold colour fields, texture",
                 "realistic, photo, literal, low quality"),
    "Cubist": ("cubist painting of {prompt}, fragmented geometric planes, multiple viewpoints, muted palette",
               _ART_NEG),
    "Graffiti": ("graffiti mural of {prompt}, spray paint on a brick wall, bold letters, drips, street art",
                 "clean, photo of a person, blurry, low quality"),
    "Hyperrealism": ("hyperrealistic rendering of {prompt}, extreme detail, lifelike textures, sharp focus",
                     "cartoon, drawing, painting, stylised, blurry"),
    "Impressionist": ("impressionist painting of {prompt}, loose visible brushstrokes, dappled light, "
                      "plein air", _ART_NEG),
    "Pointillism": ("pointillist painting of {prompt}, composed of small distinct dots of pure colour",
                    _ART_NEG),
    "Pop Art": ("pop art of {prompt}, bold primary colours, ben-day dots, thick outlines, graphic",
                "muted, photo, realistic, low contrast"),
    "Psychedelic": ("psychedelic art of {prompt}, swirling patterns, saturated rainbow colours, trippy",
                    "dull, monochrome, photo, realistic"),
    "Renaissance": ("renaissance oil painting of {prompt}, chiaroscuro, classical composition, old master",
                    "modern, photo, cartoon, low quality"),
    "Steampunk": ("steampunk {prompt}, brass gears, copper pipes, victorian machinery, steam",
                  "modern, futuristic neon, plastic, blurry"),
    "Surrealist": ("surrealist painting of {prompt}, dreamlike, impossible juxtapositions, melting forms",
                   "ordinary, photo, realistic, low quality"),
    "Typography": ("typographic design of {prompt}, expressive lettering, graphic layout, bold type",
                   "photo, cluttered, illegible, blurry"),
    "Watercolor": ("watercolour painting of {prompt}, soft washes, bleeding pigments, paper texture",
                   "photo, harsh lines, 3d render, oversaturated"),
    "Fighting Game": ("fighting game screenshot of {prompt}, character select, dynamic pose, health bars, "
                      "arcade", _GAME_NEG),
    "GTA": ("open-world crime game cover art of {prompt}, bold illustrated style, saturated city backdrop",
            _GAME_NEG),
    "Super Mario": ("colourful platform game scene of {prompt}, cheerful cartoon world, bright blocks, "
                    "playful", _GAME_NEG),
    "Minecraft": ("voxel block world scene of {prompt}, cubic blocks, blocky characters, pixel textures",
                  "smooth, round, photo, realistic"),
    "Pokémon": ("creature-collecting game art of {prompt}, cute monster, bright anime colours, clean outlines",
                _GAME_NEG),
    "Retro Arcade": ("retro arcade game of {prompt}, 1980s cabinet screen, scanlines, neon sprites",
                     "modern, photo, realistic, blurry"),
    "Retro Game": ("retro console game of {prompt}, 8-bit graphics, chiptune era, limited palette",
                   "modern, photo, realistic, blurry"),
    "RPG Fantasy Game": ("fantasy role-playing game scene of {prompt}, heroic party, detailed world map style",
                         _GAME_NEG),
    "Strategy Game": ("strategy game view of {prompt}, top-down battlefield, units and buildings, detailed map",
                      _GAME_NEG),
    "Street Fighter": ("arcade fighting game art of {prompt}, muscular fighters, dramatic special move, "
                       "bold colours", _GAME_NEG),
    "Legend of Zelda": ("adventure game scene of {prompt}, heroic elf adventurer, lush fantasy landscape, "
                        "cel shaded", _GAME_NEG),
    "Architectural": ("architectural photograph of {prompt}, clean lines, striking geometry, wide angle",
                      "cluttered, people, cartoon, distorted, blurry"),
    "Disco": ("disco era scene of {prompt}, mirror ball, glitter, 1970s colours, dance floor lights",
              "dull, monochrome, modern, blurry"),
    "Dreamscape": ("dreamscape of {prompt}, ethereal, floating, soft glow, otherworldly atmosphere",
                   "harsh, mundane, photo, low quality"),
    "Dystopian": ("dystopian scene of {prompt}, bleak, oppressive, ruined city, grim atmosphere",
                  "cheerful, bright, colourful, cartoon"),
    "Fairy Tale": ("fairy tale illustration of {prompt}, storybook, whimsical, enchanted forest, gentle light",
                   "gritty, dark, photo, realistic"),
    "Gothic": ("gothic {prompt}, dark romantic mood, cathedral arches, candlelight, ornate details",
               "bright, cheerful, modern, cartoon"),
    "Grunge": ("grunge style {prompt}, distressed textures, dirty, gritty, muted tones",
               "clean, polished, bright, smooth"),
    "Horror": ("horror scene of {prompt}, eerie, unsettling, deep shadows, fog, dread",
               "cheerful, bright, cute, colourful"),
    "Minimalist": ("minimalist {prompt}, simple shapes, negative space, restrained palette, clean",
                   "cluttered, busy, ornate, noisy"),
    "Monochrome": ("monochrome {prompt}, black and white, high contrast, tonal range",
                   "colour, colourful, saturated"),
    "Nautical": ("nautical {prompt}, sea, sailing ships, rope and brass, maritime palette",
                 "desert, urban, blurry, low quality"),
    "Space": ("{prompt} in outer space, stars, nebulae, cosmic scale, sci-fi",
              "earth landscape, daylight sky, blurry"),
    "Stained Glass": ("stained glass window of {prompt}, leaded outlines, translucent jewel colours, backlit",
                      "photo, realistic, dull, blurry"),
    "Techwear Fashion": ("techwear fashion photo of {prompt}, functional urban outfit, straps, matte black, "
                         "futuristic", "casual, vintage, cartoon, blurry"),
    "Tribal": ("tribal art of {prompt}, bold symmetric patterns, earthy pigments, ornamental",
               "photo, modern, realistic, blurry"),
    "Zentangle": ("zentangle drawing of {prompt}, intricate repetitive ink patterns, black and white, "
                  "meditative", "colour, photo, realistic, blurry"),
    "Collage": ("mixed media collage of {prompt}, cut-out photographs, layered paper, torn edges",
                "plain, uniform, 3d render, blurry"),
    "Flat Papercut": ("flat papercut art of {prompt}, single layer of cut paper, silhouette shapes, clean edges",
                      _PAPER_NEG),
    "Kirigami": ("kirigami of {prompt}, folded and cut paper, intricate symmetric cuts, pop-up structure",
                 _PAPER_NEG),
    "Paper Mache": ("papier-mache sculpture of {prompt}, layered paper strips, handmade, painted surface",
                    _PAPER_NEG),
    "Paper Quilling": ("paper quilling art of {prompt}, rolled coiled paper strips, delicate spirals, colourful",
                       _PAPER_NEG),
    "Papercut Collage": ("papercut collage of {prompt}, overlapping coloured paper pieces, layered cutouts",
                         _PAPER_NEG),
    "Papercut Shadow Box": ("papercut shadow box of {prompt}, stacked paper layers with depth, backlit, framed",
                            _PAPER_NEG),
    "Stacked Papercut": ("stacked papercut art of {prompt}, many paper layers, depth, soft shadows between "
                         "layers", _PAPER_NEG),
    "Thick Layered Papercut": ("thick layered papercut of {prompt}, deep cardboard layers, strong shadows, "
                               "tactile", _PAPER_NEG),
    "Alien": ("alien world {prompt}, otherworldly biology, strange flora, bioluminescence, sci-fi",
              "earthly, mundane, ordinary, blurry"),
    "Film Noir": ("film noir still of {prompt}, black and white, hard shadows, venetian blinds, 1940s",
                  "colour, bright, cheerful, cartoon"),
    "HDR": ("HDR photograph of {prompt}, high dynamic range, rich detail in shadows and highlights, vivid",
            "flat, low contrast, dull, blurry"),
    "Long Exposure": ("long exposure photograph of {prompt}, light trails, motion blur of moving parts, "
                      "smooth water", "static, noisy, cartoon, drawing"),
    "Neon Noir": ("neon noir scene of {prompt}, rain-slick streets, neon reflections, dark moody city",
                  "daylight, bright, cheerful, cartoon"),
    "Silhouette": ("silhouette of {prompt}, dark shape against a bright sunset sky, high contrast, minimal",
                   "detailed foreground lighting, cluttered, blurry"),
    "Tilt-Shift": ("tilt-shift photograph of {prompt}, miniature effect, selective focus, high vantage point",
                   "flat focus, cartoon, drawing, blurry"),
}


def style_template(name: str | None) -> StyleTemplate | None:
    """What the model checks need to count only the caller's words (None for no preset or "base")."""
    if name is None or STYLES[name][0] == "{prompt}":
        return None
    template, negative = STYLES[name]
    return StyleTemplate(name, template, negative)


def apply_style(name: str | None, prompt: str, negative: str | None) -> tuple[str, str | None]:
    """(prompt, negative prompt) with the preset applied; None or "base" leaves them as sent."""
    if name is None:
        return prompt, negative
    template, style_negative = STYLES[name]
    styled = template.replace("{prompt}", prompt)
    negatives = [n for n in (style_negative, negative) if n]
    return styled, ", ".join(negatives) or None
