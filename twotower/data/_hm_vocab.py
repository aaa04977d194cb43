"""Vocabularies modelled on the public H&M Personalized Fashion Recommendations data.

Pure constant tables used by :mod:`twotower.data.synthetic`; nothing here is a setting.
"""

from __future__ import annotations

# Column order of the three Kaggle files.
ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id", "product_code", "prod_name", "product_type_no", "product_type_name",
    "product_group_name", "graphical_appearance_no", "graphical_appearance_name",
    "colour_group_code", "colour_group_name", "perceived_colour_value_id",
    "perceived_colour_value_name", "perceived_colour_master_id", "perceived_colour_master_name",
    "department_no", "department_name", "index_code", "index_name", "index_group_no",
    "index_group_name", "section_no", "section_name", "garment_group_no", "garment_group_name",
    "detail_desc",
)  # fmt: skip
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency", "age",
    "postal_code",
)  # fmt: skip
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "t_dat", "customer_id", "article_id", "price", "sales_channel_id",
)  # fmt: skip

# Shelf prices in SEK; the Kaggle price column is SEK / 590 (29.99 -> 0.0508305084745762).
PRICE_POINTS_SEK: tuple[float, ...] = (
    4.99, 5.99, 6.99, 7.99, 9.99, 12.99, 14.99, 17.99, 19.99, 24.99, 29.99, 34.99, 39.99,
    49.99, 59.99, 69.99, 79.99, 99.99, 129.99, 149.99, 199.99,
)  # fmt: skip

# Customer preference over INDEX_GROUPS by age, interpolated between the anchor ages:
# young -> Divided/Sport, parents -> Baby/Children, older -> Ladieswear (+ Menswear).
AGE_ANCHORS: tuple[int, ...] = (16, 22, 30, 38, 50, 65, 99)
AGE_INDEX_GROUP_PROBS: tuple[tuple[float, ...], ...] = (
    (0.15, 0.20, 0.35, 0.35, 0.50, 0.55, 0.55),  # Ladieswear
    (0.50, 0.40, 0.15, 0.07, 0.05, 0.03, 0.03),  # Divided
    (0.15, 0.20, 0.20, 0.18, 0.20, 0.25, 0.25),  # Menswear
    (0.18, 0.15, 0.10, 0.08, 0.07, 0.07, 0.07),  # Sport
    (0.02, 0.05, 0.20, 0.32, 0.18, 0.10, 0.10),  # Baby/Children
)

# index_group_name -> index_group_no, in the order used for customer tastes.
INDEX_GROUPS: tuple[tuple[str, int], ...] = (
    ("Ladieswear", 1),
    ("Divided", 2),
    ("Menswear", 3),
    ("Sport", 26),
    ("Baby/Children", 4),
)

PRODUCT_GROUPS: tuple[str, ...] = (
    "Garment Upper body",
    "Garment Lower body",
    "Garment Full body",
    "Accessories",
    "Underwear",
    "Shoes",
    "Swimwear",
    "Socks & Tights",
    "Nightwear",
)
# Seasonal amplitude of each product group for group choice (+ summer, - winter).
PRODUCT_GROUP_SEASON: tuple[float, ...] = (0.0, 0.1, 0.3, 0.0, 0.0, 0.0, 1.2, -0.3, 0.0)

_UB, _LB, _FB, _AC, _UW, _SH, _SW, _ST, _NW = range(9)

# (index_code, index_name, index group position, catalogue weight,
#  sections [(section_no, section_name)], product-group weights {group: weight}).
INDEXES: tuple[tuple[str, str, int, float, tuple[tuple[int, str], ...], dict[int, float]], ...] = (
    ("A", "Ladieswear", 0, 0.25,
     ((16, "Womens Everyday Collection"), (15, "Womens Everyday Basics"), (18, "Womens Trend")),
     {_UB: 0.45, _LB: 0.2, _FB: 0.2, _SH: 0.05, _AC: 0.05, _SW: 0.05}),
    ("B", "Lingeries/Tights", 0, 0.06,
     ((61, "Womens Lingerie"), (62, "Womens Nightwear, Socks & Tigh")),
     {_UW: 0.45, _ST: 0.25, _NW: 0.2, _SW: 0.1}),
    ("C", "Ladies Accessories", 0, 0.06,
     ((65, "Womens Big accessories"), (66, "Womens Small accessories")),
     {_AC: 0.85, _SH: 0.15}),
    ("D", "Divided", 1, 0.15,
     ((53, "Divided Collection"), (52, "Divided Basics"), (51, "Divided Accessories")),
     {_UB: 0.4, _LB: 0.25, _FB: 0.15, _AC: 0.1, _SH: 0.05, _SW: 0.05}),
    ("F", "Menswear", 2, 0.12,
     ((21, "Contemporary Casual"), (20, "Contemporary Smart"), (23, "Men Underwear")),
     {_UB: 0.5, _LB: 0.25, _UW: 0.08, _AC: 0.07, _SH: 0.05, _SW: 0.03, _NW: 0.02}),
    ("G", "Baby Sizes 50-98", 4, 0.08,
     ((44, "Baby Essentials & Complements"), (41, "Baby Girl"), (42, "Baby Boy")),
     {_FB: 0.35, _UB: 0.3, _LB: 0.2, _NW: 0.1, _ST: 0.05}),
    ("H", "Children Sizes 92-140", 4, 0.10,
     ((46, "Kids Girl"), (47, "Kids Boy"), (45, "Kids Outerwear")),
     {_UB: 0.4, _LB: 0.25, _FB: 0.2, _NW: 0.05, _SW: 0.05, _ST: 0.05}),
    ("I", "Children Sizes 134-170", 4, 0.07,
     ((72, "Young Girl"), (70, "Young Boy")),
     {_UB: 0.45, _LB: 0.3, _FB: 0.15, _UW: 0.05, _SW: 0.05}),
    ("J", "Children Accessories, Swimwear", 4, 0.04,
     ((77, "Kids Accessories, Swimwear & D"),),
     {_AC: 0.45, _SW: 0.3, _SH: 0.15, _ST: 0.1}),
    ("S", "Sport", 3, 0.07,
     ((5, "Ladies H&M Sport"), (8, "Men H&M Sport")),
     {_UB: 0.45, _LB: 0.3, _UW: 0.1, _AC: 0.05, _SH: 0.05, _SW: 0.05}),
)  # fmt: skip

# Department name stem per product group and suffix per index code.
DEPARTMENT_STEMS: tuple[str, ...] = (
    "Jersey", "Trousers", "Dresses", "Accessories", "Lingerie",
    "Shoes", "Swimwear", "Tights basic", "Nightwear",
)  # fmt: skip
DEPARTMENT_SUFFIX: dict[str, str] = {
    "A": "", "B": " Basic", "C": " Ladies", "D": " DS", "F": " Men",
    "G": " Baby", "H": " Kids", "I": " Young", "J": " Kids Acc", "S": " Sport",
}  # fmt: skip

# (product_type_no, product_type_name, product group position, garment_group_no,
#  season amplitude (+ summer, - winter), base price in SEK, weight within group, short name)
PRODUCT_TYPES: tuple[tuple[int, str, int, int, float, float, float, str], ...] = (
    (253, "Vest top", _UB, 1002, 1.0, 9.99, 0.14, "Strap top"),
    (254, "Top", _UB, 1005, 0.0, 14.99, 0.14, "Top"),
    (255, "T-shirt", _UB, 1002, 0.5, 9.99, 0.16, "Tee"),
    (252, "Sweater", _UB, 1003, -1.0, 29.99, 0.14, "Sweater"),
    (258, "Blouse", _UB, 1010, 0.0, 24.99, 0.09, "Blouse"),
    (259, "Shirt", _UB, 1011, 0.0, 24.99, 0.07, "Shirt"),
    (264, "Jacket", _UB, 1007, -0.5, 49.99, 0.06, "Jacket"),
    (245, "Hoodie", _UB, 1005, -0.7, 24.99, 0.06, "Hoodie"),
    (257, "Cardigan", _UB, 1003, -0.7, 29.99, 0.05, "Cardigan"),
    (262, "Coat", _UB, 1007, -1.0, 79.99, 0.03, "Coat"),
    (267, "Blazer", _UB, 1008, 0.0, 49.99, 0.03, "Blazer"),
    (256, "Polo shirt", _UB, 1002, 0.5, 17.99, 0.03, "Polo"),
    (272, "Trousers", _LB, 1009, 0.0, 29.99, 0.45, "TRS"),
    (274, "Shorts", _LB, 1025, 1.0, 19.99, 0.2, "Shorts"),
    (275, "Skirt", _LB, 1014, 0.3, 24.99, 0.2, "Skirt"),
    (273, "Leggings/Tights", _LB, 1005, -0.3, 14.99, 0.15, "Leggings"),
    (265, "Dress", _FB, 1013, 0.7, 29.99, 0.6, "Dress"),
    (266, "Jumpsuit/Playsuit", _FB, 1008, 0.5, 34.99, 0.15, "Jumpsuit"),
    (270, "Garment Set", _FB, 1006, 0.0, 19.99, 0.15, "Set"),
    (271, "Dungarees", _FB, 1012, 0.0, 29.99, 0.1, "Dungarees"),
    (66, "Bag", _AC, 1019, 0.0, 24.99, 0.16, "Bag"),
    (68, "Earring", _AC, 1019, 0.0, 7.99, 0.16, "Earring"),
    (67, "Hat/beanie", _AC, 1019, -1.0, 9.99, 0.1, "Beanie"),
    (71, "Scarf", _AC, 1019, -1.0, 14.99, 0.1, "Scarf"),
    (72, "Sunglasses", _AC, 1019, 1.0, 9.99, 0.1, "Sunglasses"),
    (69, "Belt", _AC, 1019, 0.0, 12.99, 0.08, "Belt"),
    (70, "Necklace", _AC, 1019, 0.0, 9.99, 0.12, "Necklace"),
    (74, "Gloves", _AC, 1019, -1.0, 9.99, 0.06, "Gloves"),
    (87, "Cap/peaked", _AC, 1019, 0.5, 9.99, 0.12, "Cap"),
    (306, "Bra", _UW, 1017, 0.0, 19.99, 0.4, "Bra"),
    (286, "Underwear bottom", _UW, 1017, 0.0, 5.99, 0.45, "Brief"),
    (303, "Underwear body", _UW, 1017, 0.0, 14.99, 0.15, "Body"),
    (511, "Sneakers", _SH, 1020, 0.0, 29.99, 0.35, "Sneaker"),
    (94, "Boots", _SH, 1020, -1.0, 49.99, 0.25, "Boot"),
    (515, "Sandals", _SH, 1020, 1.0, 19.99, 0.25, "Sandal"),
    (93, "Ballerinas", _SH, 1020, 0.3, 19.99, 0.15, "Ballerina"),
    (298, "Bikini top", _SW, 1023, 1.0, 14.99, 0.35, "Bikini top"),
    (59, "Swimwear bottom", _SW, 1023, 1.0, 9.99, 0.35, "Bikini bottom"),
    (60, "Swimsuit", _SW, 1023, 1.0, 24.99, 0.2, "Swimsuit"),
    (61, "Swimwear set", _SW, 1023, 1.0, 19.99, 0.1, "Swim set"),
    (302, "Socks", _ST, 1021, 0.0, 5.99, 0.6, "Socks"),
    (304, "Underwear Tights", _ST, 1021, -0.7, 9.99, 0.4, "Tights"),
    (285, "Pyjama set", _NW, 1017, -0.3, 19.99, 0.5, "PJ set"),
    (284, "Night gown", _NW, 1017, 0.3, 14.99, 0.25, "Nightgown"),
    (287, "Pyjama bottom", _NW, 1017, 0.0, 12.99, 0.25, "PJ bottom"),
)

GARMENT_GROUPS: dict[int, str] = {
    1002: "Jersey Basic",
    1003: "Knitwear",
    1005: "Jersey Fancy",
    1006: "Woven/Jersey/Knitted mix Baby",
    1007: "Outdoor",
    1008: "Dressed",
    1009: "Trousers",
    1010: "Blouses",
    1011: "Shirts",
    1012: "Trousers Denim",
    1013: "Dresses Ladies",
    1014: "Skirts",
    1016: "Special Offers",
    1017: "Under-, Nightwear",
    1019: "Accessories",
    1020: "Shoes",
    1021: "Socks and Tights",
    1023: "Swimwear",
    1025: "Shorts",
}

# (graphical_appearance_no, graphical_appearance_name, weight)
GRAPHICAL_APPEARANCES: tuple[tuple[int, str, float], ...] = (
    (1010016, "Solid", 0.47),
    (1010001, "All over pattern", 0.17),
    (1010017, "Stripe", 0.07),
    (1010010, "Melange", 0.05),
    (1010008, "Front print", 0.04),
    (1010014, "Denim", 0.04),
    (1010004, "Check", 0.03),
    (1010021, "Lace", 0.03),
    (1010023, "Jacquard", 0.02),
    (1010026, "Other structure", 0.03),
    (1010005, "Colour blocking", 0.02),
    (1010002, "Application/3D", 0.02),
    (1010009, "Glittering/Metallic", 0.01),
)

# (colour_group_code, colour_group_name, perceived_colour_value_id,
#  perceived_colour_value_name, perceived_colour_master_id, perceived_colour_master_name, weight)
COLOURS: tuple[tuple[int, str, int, str, int, str, float], ...] = (
    (9, "Black", 4, "Dark", 5, "Black", 0.22),
    (10, "White", 3, "Light", 9, "White", 0.1),
    (73, "Dark Blue", 4, "Dark", 2, "Blue", 0.09),
    (7, "Grey", 2, "Medium Dusty", 12, "Grey", 0.04),
    (51, "Light Pink", 1, "Dusty Light", 4, "Pink", 0.05),
    (13, "Beige", 1, "Dusty Light", 11, "Beige", 0.05),
    (42, "Red", 5, "Bright", 18, "Red", 0.04),
    (53, "Dark Green", 4, "Dark", 19, "Green", 0.03),
    (11, "Off White", 3, "Light", 9, "White", 0.04),
    (72, "Blue", 6, "Medium", 2, "Blue", 0.04),
    (8, "Dark Grey", 4, "Dark", 12, "Grey", 0.03),
    (6, "Light Grey", 3, "Light", 12, "Grey", 0.03),
    (71, "Light Blue", 3, "Light", 2, "Blue", 0.04),
    (52, "Pink", 6, "Medium", 4, "Pink", 0.03),
    (43, "Dark Red", 4, "Dark", 18, "Red", 0.02),
    (19, "Greenish Khaki", 2, "Medium Dusty", 20, "Khaki green", 0.02),
    (17, "Yellowish Brown", 2, "Medium Dusty", 1, "Brown", 0.02),
    (12, "Light Beige", 3, "Light", 11, "Beige", 0.02),
    (23, "Dark Yellow", 5, "Bright", 8, "Yellow", 0.01),
    (63, "Dark Turquoise", 4, "Dark", 7, "Turquoise", 0.01),
    (82, "Light Purple", 1, "Dusty Light", 6, "Lilac Purple", 0.01),
    (33, "Orange", 5, "Bright", 13, "Orange", 0.01),
)

PRODUCT_NAME_STEMS: tuple[str, ...] = (
    "Jade", "Tilda", "Luna", "Mia", "Alva", "Rocky", "Bella", "Stella", "Ellie", "Maja",
    "Hanna", "Rio", "Kelly", "Nora", "Ivy", "Penny", "Lima", "Tanja", "Simon", "Oscar",
    "Leon", "Hugo", "Malte", "Sara", "Wanda", "Doris", "Pamela", "Greta", "Elton", "Rylee",
    "Cosmo", "Moa", "Ines", "Vera", "Zola", "Frida", "Tova", "Ebba", "Lova", "Milo",
)  # fmt: skip
PRODUCT_NAME_MODIFIERS: tuple[str, ...] = (
    "HW", "Slim", "Skinny", "Relaxed", "Rib", "Wide", "Denim", "Linen", "Tie-dye", "Basic",
    "2-pack", "Soft", "Cropped", "Oversized", "Padded", "Jersey", "Satin", "Knitted", "Flared",
    "Straight", "Loose", "Shaping", "Push", "Seamless", "Fancy",
)  # fmt: skip

MATERIALS: tuple[str, ...] = (
    "soft cotton jersey", "stretch denim", "woven fabric", "fine-knit viscose",
    "sweatshirt fabric with a soft brushed inside", "airy linen", "ribbed jersey",
    "recycled polyester", "organic cotton", "satin", "lace", "a chunky-knit wool blend",
    "thick cotton twill", "microfibre", "crêpe fabric",
)  # fmt: skip
FEATURES: tuple[str, ...] = (
    "a round neckline", "long sleeves", "a V-neck", "a high waist", "an elasticated waist",
    "side pockets", "a zip fly and button", "narrow shoulder straps", "a tie belt at the waist",
    "wide legs", "a concealed zip at the back", "a lined hood", "ribbing at the cuffs and hem",
    "dropped shoulders", "adjustable straps", "a drawstring", "short sleeves",
    "press-studs at the crotch", "a wrapover front", "a gently rounded hem",
    "a small chest pocket", "a buttoned back slit", "raw-edge hems", "a regular fit",
)  # fmt: skip
FITS: tuple[str, ...] = ("Fitted", "Relaxed-fit", "Short", "Long", "Loose-fitting", "Calf-length")
