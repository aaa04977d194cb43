"""Vocabularies of the synthetic cash-and-carry data (made up, plausible, short).

Pure constant tables used by :mod:`twotower.data.retail`; nothing here is a setting.
"""

from __future__ import annotations

SALES_FILE, PRODUCTS_FILE, CUSTOMERS_FILE = "sales.csv", "products.csv", "customers.csv"
SALES_COLUMNS: tuple[str, ...] = ("customer_id", "product_id", "revenue", "timestamp")
PRODUCT_COLUMNS: tuple[str, ...] = ("product_id", "product_name", "category", "subcategory")
CUSTOMER_COLUMNS: tuple[str, ...] = ("customer_id", "city", "customer_type")

Subcategories = tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]  # ((name, product nouns, pack sizes), ...)

# (category, share of the assortment, typical shelf price in EUR, brands, subcategories)
CATEGORIES: tuple[tuple[str, float, float, tuple[str, ...], Subcategories], ...] = (
    ("Fruit & Vegetables", 1.2, 9.0, ("Green Valley", "Fresh Market"), (
        ("Vegetables", ("Potatoes", "Onions", "Tomatoes", "Carrots"), ("2.5 kg", "5 kg", "10 kg")),
        ("Fruit", ("Apples", "Bananas", "Lemons", "Oranges"), ("1 kg", "5 kg", "Crate 10 kg")),
        ("Herbs & Salads", ("Iceberg Lettuce", "Rocket", "Flat Parsley", "Basil"), ("100 g", "500 g", "6 pcs")),
    )),
    ("Meat & Poultry", 1.0, 28.0, ("Butcher's Pride", "Farmhouse"), (
        ("Beef", ("Beef Rump", "Minced Beef", "Beef Brisket"), ("1 kg", "2.5 kg", "5 kg")),
        ("Pork", ("Pork Loin", "Pork Belly", "Pork Neck"), ("1 kg", "2.5 kg", "5 kg")),
        ("Poultry", ("Chicken Breast", "Chicken Thighs", "Turkey Breast"), ("1 kg", "2.5 kg", "5 kg")),
    )),
    ("Fish & Seafood", 0.7, 32.0, ("Nordic Catch", "Blue Harbour"), (
        ("Fresh Fish", ("Salmon Fillet", "Cod Loin", "Sea Bream"), ("500 g", "1 kg", "2 kg")),
        ("Frozen Seafood", ("Prawns", "Squid Rings", "Mussels"), ("1 kg", "2.5 kg")),
        ("Smoked & Canned Fish", ("Smoked Salmon", "Tuna Chunks", "Anchovies"), ("200 g", "1 kg", "6 x 185 g")),
    )),
    ("Dairy & Eggs", 1.0, 12.0, ("Alpine Dairy", "Meadow Gold"), (
        ("Milk & Cream", ("Whole Milk", "Whipping Cream", "Barista Milk"), ("1 L", "6 x 1 L", "10 L")),
        ("Cheese", ("Gouda", "Mozzarella", "Parmesan", "Feta"), ("200 g", "1 kg", "2.5 kg")),
        ("Butter & Eggs", ("Butter", "Free-Range Eggs", "Margarine"), ("250 g", "30 pcs", "2 kg")),
    )),
    ("Bakery", 0.7, 8.0, ("Baker's Choice", "Stone Oven"), (
        ("Bread", ("Sourdough Loaf", "Baguette", "Burger Buns"), ("1 pc", "6 pcs", "24 pcs")),
        ("Pastry", ("Croissants", "Danish Pastries", "Muffins"), ("6 pcs", "24 pcs", "60 pcs")),
        ("Baking Supplies", ("Wheat Flour", "Caster Sugar", "Dried Yeast"), ("1 kg", "10 kg", "25 kg")),
    )),
    ("Frozen Food", 0.8, 14.0, ("Polar Kitchen", "Frostline"), (
        ("Frozen Vegetables", ("Green Peas", "Leaf Spinach", "Mixed Vegetables"), ("1 kg", "2.5 kg")),
        ("Fries & Potatoes", ("French Fries", "Potato Wedges", "Hash Browns"), ("2.5 kg", "4 x 2.5 kg")),
        ("Ice Cream", ("Vanilla Ice Cream", "Chocolate Ice Cream", "Lemon Sorbet"), ("1 L", "5 L")),
    )),
    ("Dry Grocery", 1.3, 7.0, ("Chef's Pantry", "Basic Value"), (
        ("Pasta & Rice", ("Spaghetti", "Penne", "Basmati Rice", "Risotto Rice"), ("500 g", "3 kg", "10 kg")),
        ("Oils & Sauces", ("Sunflower Oil", "Olive Oil", "Tomato Passata", "Mayonnaise"), ("1 L", "5 L", "10 L")),
        ("Spices & Condiments", ("Black Pepper", "Sea Salt", "Sweet Paprika", "Ketchup"), ("500 g", "1 kg")),
    )),
    ("Coffee, Tea & Snacks", 0.8, 11.0, ("Crema Roast", "Tea Garden"), (
        ("Coffee", ("Espresso Beans", "Crema Beans", "Ground Coffee"), ("500 g", "1 kg", "6 x 1 kg")),
        ("Tea", ("Black Tea", "Green Tea", "Herbal Tea"), ("25 bags", "100 bags")),
        ("Snacks", ("Butter Biscuits", "Sea Salt Crisps", "Chocolate Bars"), ("10 pcs", "24 pcs", "100 pcs")),
    )),
    ("Soft Drinks", 0.8, 9.0, ("Spring Peak", "Fizzco"), (
        ("Water", ("Still Water", "Sparkling Water"), ("6 x 1.5 L", "12 x 0.75 L", "24 x 0.5 L")),
        ("Soft Drinks & Juices", ("Cola", "Lemonade", "Orange Juice", "Apple Juice"), ("6 x 1.5 L", "24 x 0.33 L")),
        ("Energy & Sports", ("Energy Drink", "Iced Tea", "Isotonic Drink"), ("24 x 0.25 L", "12 x 0.5 L")),
    )),
    ("Beer, Wine & Spirits", 0.9, 18.0, ("Old Cellar", "Hopfield"), (
        ("Beer", ("Pilsner", "Wheat Beer", "Alcohol-Free Beer"), ("20 x 0.5 L", "24 x 0.33 L", "30 L Keg")),
        ("Wine", ("Red Wine", "White Wine", "Prosecco"), ("0.75 L", "6 x 0.75 L")),
        ("Spirits", ("Vodka", "Dry Gin", "Blended Whisky"), ("0.7 L", "1 L", "6 x 0.7 L")),
    )),
    ("Cleaning & Hygiene", 0.8, 13.0, ("ProClean", "Sparkle"), (
        ("Cleaning Agents", ("Dishwasher Tablets", "Floor Cleaner", "Glass Cleaner"), ("1 L", "5 L", "100 pcs")),
        ("Paper & Tissue", ("Toilet Paper", "Kitchen Roll", "Paper Napkins"), ("8 rolls", "24 rolls", "500 pcs")),
        ("Hand Care", ("Hand Soap", "Disinfectant Gel", "Nitrile Gloves"), ("500 ml", "5 L", "100 pcs")),
    )),
    ("Office Supplies", 0.6, 15.0, ("OfficeMate", "Paperline"), (
        ("Paper & Printing", ("Copy Paper A4", "Toner Cartridge", "Envelopes C5"), ("1 pc", "500 pcs", "5 x 500 pcs")),
        ("Writing", ("Ballpoint Pens", "Whiteboard Markers", "Notepads A5"), ("4 pcs", "10 pcs", "50 pcs")),
        ("Filing", ("Lever Arch Files", "Plastic Folders", "Staples"), ("1 pc", "10 pcs", "100 pcs")),
    )),
    ("Kitchen & Disposables", 0.7, 16.0, ("Gastro Line", "EcoServe"), (
        ("Disposables", ("Paper Cups", "Takeaway Boxes", "Wooden Cutlery"), ("50 pcs", "100 pcs", "500 pcs")),
        ("Foil & Film", ("Aluminium Foil", "Cling Film", "Baking Paper"), ("30 m", "150 m", "300 m")),
        ("Kitchen Equipment", ("Chef Knife", "Cutting Board", "Gastronorm Pan"), ("1 pc", "2 pcs")),
    )),
)  # fmt: skip

# (customer type, share of customers, activity multiplier, share of purchases that are staples,
#  mean extra units per line, category weights by CATEGORIES position)
CUSTOMER_TYPES: tuple[tuple[str, float, float, float, float, tuple[float, ...]], ...] = (
    ("HoReCa", 0.45, 1.5, 0.5, 3.0, (3.0, 3.0, 2.0, 3.0, 2.0, 2.0, 2.5, 1.5, 1.5, 2.0, 1.0, 0.1, 1.5)),
    ("Trader", 0.30, 1.3, 0.4, 5.0, (1.0, 0.5, 0.3, 1.0, 0.5, 1.5, 3.0, 2.0, 3.0, 3.0, 1.5, 0.3, 0.5)),
    ("Office", 0.15, 0.7, 0.45, 1.0, (0.5, 0.05, 0.05, 1.0, 0.5, 0.1, 0.3, 3.0, 2.0, 0.3, 2.0, 4.0, 1.0)),
    ("Other", 0.10, 0.5, 0.25, 0.5, (1.0, 1.0, 0.7, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.7)),
)  # fmt: skip

# (city, share of customers)
CITIES: tuple[tuple[str, float], ...] = (
    ("Berlin", 0.22), ("Hamburg", 0.15), ("Munich", 0.14), ("Cologne", 0.11), ("Frankfurt", 0.10),
    ("Stuttgart", 0.09), ("Dusseldorf", 0.08), ("Leipzig", 0.06), ("Dresden", 0.05),
)  # fmt: skip

# Shopping volume by weekday (Monday first; Sunday: most stores closed) and by hour of day (UTC).
WEEKDAY_WEIGHTS: tuple[float, ...] = (1.0, 0.95, 0.95, 1.0, 1.15, 1.1, 0.1)
HOUR_WEIGHTS: tuple[float, ...] = (
    0, 0, 0, 0, 0, 0, 1.5, 2.5, 2.5, 2.0, 1.6, 1.4, 1.2, 1.2, 1.3, 1.5, 1.7, 1.6, 1.2, 0.9, 0.6, 0.4, 0, 0,
)  # fmt: skip
