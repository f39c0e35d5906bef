#!/usr/bin/env python3
"""Generate the ocop-market seed catalogue (services/catalog/seed/catalog.toml).

Usage (from the repository root):

    python3 tools/seedgen/gen_catalog.py > services/catalog/seed/catalog.toml

Python 3.11+, standard library only. The output is deterministic: every random
choice (stars, prices, stock, description wording) comes from one generator
seeded with SEED, and all tables below are iterated in their written order.

The data are SAMPLE DATA modelled on the Quảng Ninh OCOP catalogue: producers
are illustrative, and OCOP star ratings, prices and stock levels are sample
values for development and tests, not official ratings or real prices.

Layout of this file:
  1. districts and categories,
  2. product kinds (name template, SKU stem, category, packagings, price ranges,
     description sentences),
  3. producers (who makes which kinds, where),
  4. a small generation loop and a TOML writer.
"""

from __future__ import annotations

import random
import sys
import unicodedata
from dataclasses import dataclass, field

SEED = 20240915
PROVINCE = "Quảng Ninh"

# --------------------------------------------------------------------------
# 1. Districts (district-level units of Quảng Ninh) and their SKU prefixes.
# --------------------------------------------------------------------------
DISTRICTS: dict[str, str] = {
    "Bình Liêu": "BLI",
    "Ba Chẽ": "BCH",
    "Tiên Yên": "TYE",
    "Đầm Hà": "DHA",
    "Hải Hà": "HHA",
    "Móng Cái": "MCA",
    "Vân Đồn": "VDO",
    "Cô Tô": "CTO",
    "Hạ Long": "HLO",
    "Cẩm Phả": "CPH",
    "Uông Bí": "UBI",
    "Đông Triều": "DTR",
    "Quảng Yên": "QYE",
}

FOOD = "Thực phẩm"
DRINK = "Đồ uống"
HERB = "Thảo dược"
CRAFT = "Thủ công mỹ nghệ"
TOUR = "Dịch vụ du lịch"
CATEGORIES = [FOOD, DRINK, HERB, CRAFT, TOUR]

# OCOP stars drawn with these weights (3, 4, 5 stars).
STAR_WEIGHTS = {3: 45, 4: 40, 5: 15}
# Flagship products searched for by tests get a fixed sample rating.
FIXED_STARS = {"Miến dong Bình Liêu": 4, "Trà hoa vàng Ba Chẽ": 4}
# Share of products listed as out of stock (stock = 0).
OUT_OF_STOCK_RATE = 0.03
# Producers do not all carry every packaging: each variant after a kind's first is
# left out with this probability, except for the flagship producers below.
DROP_VARIANT_RATE = 0.25
FULL_RANGE_PRODUCERS = {
    "HTX Miến dong Bình Liêu", "HTX Trà hoa vàng Ba Chẽ", "HTX Ba kích Ba Chẽ", "HTX Gà Tiên Yên",
    "Công ty TNHH Chả mực Hòn Gai", "HTX Nước mắm Cái Rồng", "Công ty TNHH Gốm Đức Chính",
}

# Stock ranges (units on hand) by how the product is sold.
STOCK_SHELF = (60, 600)  # dry, bottled, packaged goods
STOCK_FRESH = (10, 120)  # fresh / chilled goods
STOCK_CRAFT = (3, 60)  # handicrafts
STOCK_TOUR = (4, 40)  # rooms / tour slots


# --------------------------------------------------------------------------
# 2. Product kinds.
#
# A kind is a product line; each variant is one sellable product (one SKU).
# Name templates may contain {place}: the producer's district, or (when that
# name is already taken by another producer) the producer's commune/ward.
# Prices are in thousands of VND (lo, hi), inclusive.
# Description sentences may use {district}, {locality} and {producer}.
# --------------------------------------------------------------------------
@dataclass
class Variant:
    unit: str
    tag: str  # SKU suffix for the packaging, e.g. "500G"
    lo: int  # price range, thousand VND
    hi: int
    name: str | None = None  # overrides the kind's name template
    sfx: str = ""  # appended to the name, e.g. "túi lọc"
    stem: str | None = None  # overrides the kind's SKU stem
    note: str | None = None  # variant-specific description sentence
    intro: list[str] | None = None  # replaces the kind's intro sentences (a different product)
    stock: tuple[int, int] | None = None


@dataclass
class Kind:
    name: str
    stem: str
    category: str
    districts: list[str]
    variants: list[Variant]
    intro: list[str]
    keep: str | None = None  # storage / usage sentence
    stock: tuple[int, int] = STOCK_SHELF


V = Variant
ALC = "Sản phẩm có cồn, không bán cho người dưới 18 tuổi."
POTTERY_INTRO = [
    "Sản phẩm được tạo hình thủ công từ đất sét {district}, nung ở nhiệt độ trên 1.200 °C.",
    "Men gốm do {producer} tự pha chế, màu men bền, bề mặt nhẵn và không chì.",
    "Gốm {district} có xương đất chắc, gõ kêu thanh; hoa văn được vẽ hoặc khắc tay.",
]
POTTERY_KEEP = "Đóng gói chống sốc khi vận chuyển."
POTTERY_DISTRICTS = ["Đông Triều"]

KINDS: dict[str, Kind] = {
    # ---- Thực phẩm -------------------------------------------------------
    "mien": Kind(
        "Miến dong {place}", "MIEN-DONG", FOOD, ["Bình Liêu"],
        [V("gói 500g", "500G", 60, 90),
         V("gói 1kg", "1KG", 115, 170),
         V("gói 200g", "200G", 26, 38),
         V("hộp quà 3 gói 500g", "HQ-1500G", 220, 290, sfx="hộp quà")],
        ["Miến được làm từ tinh bột củ dong riềng trồng trên nương ở {district}, phơi nắng tự nhiên, không dùng chất tẩy trắng.",
         "Sợi miến dai, trong, không nát khi nấu; làm hoàn toàn từ tinh bột dong riềng của đồng bào vùng cao {district}.",
         "Miến dong truyền thống của {locality}, {district}: tinh bột dong riềng được tráng, thái sợi và phơi khô trên giàn tre."],
        keep="Bảo quản nơi khô ráo, thoáng mát; ngâm nước 5–10 phút trước khi nấu.",
    ),
    "ga": Kind(
        "Gà Tiên Yên", "GA", FOOD, ["Tiên Yên"],
        [V("con ~1,5kg", "CON", 250, 350, note="Bán nguyên con, làm sạch miễn phí theo yêu cầu."),
         V("con ~1,5kg", "LAM-SACH", 270, 360, sfx="làm sạch",
           note="Gà được giết mổ, làm sạch và đóng túi hút chân không, bảo quản ngăn mát 0–4 °C."),
         V("con ~1kg", "U-MUOI", 280, 380, sfx="ủ muối thảo mộc",
           note="Gà ủ muối hạt và lá chanh rồi hấp chín, chỉ cần làm nóng trước khi ăn."),
         V("con ~1kg", "HUN-KHOI", 300, 400, sfx="hun khói",
           note="Gà tẩm gia vị và hun khói củi theo cách làm của người Tày.")],
        ["Gà Tiên Yên giống bản địa, nuôi thả đồi trên 5 tháng, thịt săn chắc, da vàng, xương nhỏ.",
         "Gà được nuôi thả vườn đồi tại {locality}, {district}, ăn ngô, thóc và rau xanh, thịt thơm ngọt.",
         "Giống gà Tiên Yên chân vàng, mào đỏ, nuôi theo quy trình an toàn sinh học, truy xuất được nguồn gốc."],
        stock=(8, 80),
    ),
    "ga_doi": Kind(
        "Gà đồi {place}", "GA-DOI", FOOD, ["Đầm Hà", "Hải Hà", "Ba Chẽ", "Hạ Long", "Cẩm Phả"],
        [V("con ~1,8kg", "CON", 220, 300)],
        ["Gà ri lai nuôi thả đồi tại {locality}, {district}, thịt chắc, ít mỡ.",
         "Gà được chăn thả dưới tán rừng keo, ăn ngô và rau xanh, nuôi trên 4 tháng mới xuất bán."],
        keep="Bán nguyên con, làm sạch miễn phí theo yêu cầu.",
        stock=(8, 80),
    ),
    "trung_vit_bien": Kind(
        "Trứng vịt biển {place}", "TRUNG-VIT-BIEN", FOOD, ["Tiên Yên"],
        [V("hộp 10 quả", "H10", 45, 65), V("khay 30 quả", "K30", 120, 180)],
        ["Vịt biển được thả ở bãi triều và rừng ngập mặn {locality}, ăn tôm cá nhỏ nên lòng đỏ to, màu đỏ cam.",
         "Trứng được thu nhặt hằng ngày, làm sạch và soi kiểm tra trước khi đóng hộp."],
        keep="Bảo quản nơi thoáng mát, dùng trong 15 ngày.",
        stock=STOCK_FRESH,
    ),
    "mat_ong": Kind(
        "Mật ong rừng {place}", "MAT-ONG-RUNG", FOOD,
        ["Bình Liêu", "Ba Chẽ", "Tiên Yên", "Đầm Hà", "Hải Hà", "Hạ Long", "Cẩm Phả", "Uông Bí", "Đông Triều"],
        [V("chai 500ml", "500ML", 220, 320), V("chai 1 lít", "1L", 400, 560), V("lọ 250ml", "250ML", 120, 170)],
        ["Mật ong được khai thác từ đàn ong nội nuôi dưới tán rừng {district}, mật sánh, thơm mùi hoa rừng.",
         "Mật ong nguyên chất, không pha trộn, thu hoạch theo mùa hoa rừng tại {locality}.",
         "Ong nội được nuôi tự nhiên ở vùng rừng {district}; mật được lọc sạch và đóng chai ngay sau khi quay."],
        keep="Bảo quản nơi thoáng mát, tránh ánh nắng; mật có thể kết tinh khi trời lạnh.",
    ),
    "cha_muc": Kind(
        "Chả mực {place}", "CHA-MUC", FOOD, ["Hạ Long", "Cẩm Phả", "Vân Đồn", "Móng Cái"],
        [V("gói 500g", "500G", 190, 240), V("gói 1kg", "1KG", 350, 450),
         V("khay 300g", "300G", 115, 150),
         V("gói 1kg", "GIA-TAY-1KG", 380, 480, sfx="giã tay")],
        ["Chả mực giã tay từ mực ống tươi đánh bắt ở vùng biển {district}, giữ độ giòn và vị ngọt tự nhiên.",
         "Mực tươi được làm sạch, giã bằng cối đá theo cách truyền thống, không dùng hàn the.",
         "Chả mực {district} có màu trắng ngà, miếng chả dai giòn, rán lên vàng đều và thơm."],
        keep="Bảo quản ngăn đông; rán trực tiếp, không cần rã đông lâu.",
        stock=(20, 300),
    ),
    "ruoc_muc": Kind(
        "Ruốc mực {place}", "RUOC-MUC", FOOD, ["Hạ Long", "Cẩm Phả", "Vân Đồn"],
        [V("hộp 200g", "200G", 150, 220), V("hộp 100g", "100G", 80, 120)],
        ["Mực tươi được hấp, xé tơi và sao khô cùng gia vị, sợi ruốc vàng, thơm.",
         "Ruốc mực làm thủ công tại {locality}, {district}, không chất bảo quản."],
        keep="Bảo quản nơi khô ráo; ăn kèm cơm, xôi hoặc cháo.",
    ),
    "cha_ca": Kind(
        "Chả cá {place}", "CHA-CA", FOOD, ["Hạ Long", "Cẩm Phả", "Vân Đồn", "Quảng Yên", "Đầm Hà", "Hải Hà", "Móng Cái"],
        [V("gói 500g", "500G", 110, 150), V("gói 1kg", "1KG", 200, 280)],
        ["Chả cá làm từ cá thu, cá mối tươi của ngư dân {district}, giã nhuyễn, tẩm gia vị vừa phải.",
         "Chả cá dai, thơm, rán vàng, dùng ăn kèm bún, bánh cuốn hoặc làm món nhắm."],
        keep="Bảo quản ngăn đông, dùng trong 3 tháng.",
        stock=(20, 300),
    ),
    "sa_sung": Kind(
        "Sá sùng khô {place}", "SA-SUNG-KHO", FOOD, ["Vân Đồn", "Cô Tô", "Móng Cái"],
        [V("túi 100g", "100G", 400, 700), V("hộp 200g", "200G", 800, 1300), V("túi 50g", "50G", 210, 360)],
        ["Sá sùng được đào ở bãi cát triều {locality}, làm sạch ruột và sấy khô, dùng nấu nước dùng ngọt thanh.",
         "Sá sùng khô là đặc sản vùng biển đảo {district}, giòn ngọt khi nướng, rang hoặc xào.",
         "Sá sùng thu hoạch thủ công khi triều rút, phơi sấy ngay trong ngày để giữ màu và vị ngọt."],
        keep="Bảo quản nơi khô ráo hoặc ngăn mát, đóng túi hút chân không.",
        stock=(10, 200),
    ),
    "hai_sam": Kind(
        "Hải sâm khô {place}", "HAI-SAM-KHO", FOOD, ["Vân Đồn", "Cô Tô"],
        [V("túi 100g", "100G", 280, 480), V("hộp 200g", "200G", 550, 900)],
        ["Hải sâm đánh bắt ở vùng biển {district}, làm sạch, luộc sơ và sấy khô.",
         "Hải sâm khô dùng hầm, nấu cháo hoặc ngâm rượu; ngâm nở trước khi chế biến."],
        keep="Bảo quản nơi khô ráo, thoáng mát.",
        stock=(10, 150),
    ),
    "ngan": Kind(
        "Ngán {place}", "NGAN", FOOD, ["Vân Đồn", "Cô Tô", "Hải Hà"],
        [V("túi 1kg", "1KG", 150, 250, note="Giao ngán sống, dùng làm nộm, nướng hoặc nấu cháo."),
         V("khay 500g", "500G", 180, 260, name="Ruột ngán làm sạch {place}", stem="RUOT-NGAN",
           note="Ngán được tách vỏ, làm sạch ruột, đóng khay và cấp đông.")],
        ["Ngán sống ở bãi bùn cát ven các đảo {district}, thịt giòn ngọt, là đặc sản nổi tiếng của Quảng Ninh.",
         "Ngán được khai thác tại {locality}, giữ sống trong nước biển sạch trước khi giao."],
        stock=STOCK_FRESH,
    ),
    "tu_hai": Kind(
        "Tu hài {place}", "TU-HAI", FOOD, ["Vân Đồn", "Cô Tô", "Móng Cái"],
        [V("túi 1kg", "1KG", 220, 320)],
        ["Tu hài nuôi tại vùng biển sạch {locality}, {district}, thịt dày, ngọt, giàu đạm.",
         "Tu hài được chọn con to, vỏ sáng, giữ sống trong bể nước biển trước khi đóng gói."],
        keep="Giao trong ngày; dùng nướng mỡ hành, hấp sả hoặc nấu cháo.",
        stock=STOCK_FRESH,
    ),
    "hau": Kind(
        "Hàu {place}", "HAU", FOOD, ["Vân Đồn", "Quảng Yên", "Hải Hà", "Tiên Yên"],
        [V("túi 3kg", "3KG", 90, 140, note="Hàu được làm sạch vỏ, giao sống trong ngày.")],
        ["Hàu nuôi trên bè ở vùng nước lợ {locality}, {district}, thịt béo, ngọt.",
         "Hàu được nuôi theo hình thức treo giàn, thu hoạch khi đạt kích cỡ đều."],
        stock=STOCK_FRESH,
    ),
    "ruoc_hau": Kind(
        "Ruốc hàu {place}", "RUOC-HAU", FOOD, ["Vân Đồn", "Quảng Yên"],
        [V("hộp 200g", "200G", 160, 230), V("hộp 100g", "100G", 85, 125)],
        ["Ruốc làm từ thịt hàu tươi nuôi tại {locality}, hấp chín, xé nhỏ và sao khô với gia vị.",
         "Ruốc hàu thơm, ngọt, giàu kẽm, thích hợp ăn kèm cơm, cháo cho trẻ nhỏ và người lớn tuổi."],
        keep="Bảo quản nơi khô ráo, đậy kín nắp sau khi mở.",
    ),
    "sua": Kind(
        "Sứa đỏ {place}", "SUA-DO", FOOD, ["Hạ Long", "Quảng Yên", "Móng Cái", "Vân Đồn", "Cẩm Phả"],
        [V("hộp 500g", "500G", 55, 85), V("túi 1kg", "1KG", 100, 150)],
        ["Sứa đỏ đánh bắt theo mùa ở vùng biển {district}, sơ chế bằng phèn và muối theo cách truyền thống.",
         "Sứa giòn sần sật, đã được rửa sạch và khử mặn, dùng làm nộm hoặc ăn kèm bún."],
        keep="Bảo quản ngăn mát 0–4 °C.",
        stock=STOCK_FRESH,
    ),
    "ca_thu": Kind(
        "Cá thu một nắng {place}", "CA-THU-MOT-NANG", FOOD, ["Cô Tô", "Vân Đồn", "Hạ Long"],
        [V("túi 1kg", "1KG", 380, 480), V("túi 500g", "500G", 200, 250),
         V("gói 1kg", "1KG", 250, 320, name="Chả cá thu {place}", stem="CHA-CA-THU",
           intro=["Chả giã tay từ thịt cá thu tươi đánh bắt ở vùng biển {district}, rán vàng, dai và thơm."],
           note="Bảo quản ngăn đông, rán lại trước khi ăn.")],
        ["Cá thu đánh bắt ở vùng biển {district}, làm sạch, ướp muối nhạt và phơi một nắng.",
         "Cá thu cắt khúc, thịt chắc, thơm, rán hoặc nướng đều ngon."],
        keep="Bảo quản ngăn đông.",
        stock=(15, 200),
    ),
    "muc_kho": Kind(
        "Mực khô {place}", "MUC-KHO", FOOD, ["Cô Tô", "Vân Đồn", "Hạ Long", "Cẩm Phả", "Móng Cái"],
        [V("túi 500g", "500G", 650, 950), V("túi 250g", "250G", 330, 480),
         V("túi 1kg", "1KG", 450, 600, name="Mực một nắng {place}", stem="MUC-MOT-NANG",
           intro=["Mực ống câu ở vùng biển {district}, làm sạch và phơi đúng một nắng nên thịt còn mềm, ngọt."],
           note="Bảo quản ngăn đông; nướng hoặc chiên sau khi rã đông.")],
        ["Mực ống câu đêm ở vùng biển {district}, phơi khô dưới nắng tự nhiên, thân dày, ngọt.",
         "Mực được phân loại cỡ đều, làm sạch, phơi nắng và sấy nhẹ để giữ màu."],
        keep="Bảo quản ngăn mát hoặc nơi khô ráo, thoáng mát.",
        stock=(10, 200),
    ),
    "tom_kho": Kind(
        "Tôm khô {place}", "TOM-KHO", FOOD, ["Hải Hà", "Đầm Hà", "Móng Cái", "Tiên Yên"],
        [V("túi 500g", "500G", 380, 550), V("túi 250g", "250G", 200, 290)],
        ["Tôm biển tươi được luộc, phơi và sấy khô tại {locality}, {district}, màu đỏ tự nhiên, không phẩm màu.",
         "Tôm khô chắc thịt, ngọt, dùng nấu canh, làm nộm hoặc ăn trực tiếp."],
        keep="Bảo quản nơi khô ráo hoặc ngăn mát.",
        stock=(15, 250),
    ),
    "nuoc_mam_cai_rong": Kind(
        "Nước mắm Cái Rồng", "NUOC-MAM-CAI-RONG", FOOD, ["Vân Đồn"],
        [V("chai 500ml", "500ML", 80, 140), V("chai 1 lít", "1L", 140, 230),
         V("chai 250ml", "COT-NHI-250ML", 60, 95, sfx="cốt nhĩ",
           note="Nước mắm cốt nhĩ lấy từ lần rút đầu tiên, độ đạm cao, dùng chấm trực tiếp.")],
        ["Nước mắm Cái Rồng được ủ chượp từ cá cơm tươi và muối biển trong thùng gỗ từ 12 tháng trở lên.",
         "Nước mắm truyền thống của {locality}, {district}, màu cánh gián, vị đậm, hậu ngọt."],
        keep="Đậy kín nắp, để nơi thoáng mát; có thể xuất hiện tinh thể muối tự nhiên ở đáy chai.",
    ),
    "nuoc_mam": Kind(
        "Nước mắm {place}", "NUOC-MAM", FOOD, ["Móng Cái", "Cô Tô", "Quảng Yên"],
        [V("chai 500ml", "500ML", 70, 120), V("chai 1 lít", "1L", 120, 200)],
        ["Nước mắm được ủ chượp truyền thống từ cá cơm và muối biển của ngư dân {district}.",
         "Nước mắm nguyên chất, không chất bảo quản, màu nâu cánh gián, mùi thơm dịu."],
        keep="Đậy kín nắp, để nơi thoáng mát.",
    ),
    "khoai_so": Kind(
        "Khoai sọ {place}", "KHOAI-SO", FOOD, ["Bình Liêu", "Tiên Yên", "Ba Chẽ"],
        [V("túi 2kg", "2KG", 60, 90), V("túi 5kg", "5KG", 140, 200)],
        ["Khoai sọ trồng trên nương ở {locality}, {district}, củ nhỏ đều, khi nấu bở và dẻo.",
         "Khoai sọ được canh tác theo cách truyền thống, không dùng thuốc diệt cỏ, thu hoạch khi củ già."],
        keep="Bảo quản nơi thoáng mát; dùng nấu canh, hầm xương hoặc luộc.",
        stock=(20, 300),
    ),
    "lon_mong_cai": Kind(
        "Thịt lợn Móng Cái", "THIT-LON-MONG-CAI", FOOD, ["Móng Cái", "Hải Hà", "Đầm Hà"],
        [V("khay 1kg", "1KG", 150, 190),
         V("gói 500g", "500G", 130, 170, name="Giò lợn Móng Cái", stem="GIO-LON-MONG-CAI",
           note="Giò lụa làm từ thịt nạc lợn Móng Cái giã tay, gói lá chuối."),
         V("gói 500g", "500G", 160, 220, name="Lạp xưởng lợn Móng Cái", stem="LAP-XUONG-MONG-CAI",
           note="Lạp xưởng nhồi thịt lợn Móng Cái, phơi gió, ăn kèm xôi hoặc cơm.")],
        ["Lợn Móng Cái là giống lợn bản địa lưng đen, bụng trắng, thịt mềm, thơm.",
         "Lợn Móng Cái được nuôi tại {locality}, {district} bằng cám gạo, ngô và rau xanh."],
        keep="Bảo quản ngăn mát 0–4 °C.",
        stock=STOCK_FRESH,
    ),
    "dau_so": Kind(
        "Dầu sở {place}", "DAU-SO", FOOD, ["Bình Liêu"],
        [V("chai 250ml", "250ML", 95, 140), V("chai 500ml", "500ML", 180, 260), V("chai 1 lít", "1L", 340, 480)],
        ["Dầu sở được ép từ hạt cây sở (trà dầu) trồng trên đồi {district}, màu vàng trong, mùi thơm nhẹ.",
         "Hạt sở được phơi khô, ép theo phương pháp truyền thống và lọc lắng tự nhiên, không pha trộn."],
        keep="Dùng nấu ăn, trộn salad hoặc dưỡng da; đậy kín nắp sau khi dùng.",
    ),
    "hoi": Kind(
        "Hoa hồi khô {place}", "HOA-HOI", FOOD, ["Bình Liêu", "Tiên Yên", "Ba Chẽ"],
        [V("túi 500g", "500G", 90, 140), V("túi 200g", "200G", 40, 60),
         V("lọ 100g", "100G", 35, 55, name="Bột hoa hồi {place}", stem="BOT-HOI",
           note="Hoa hồi khô được nghiền mịn, dùng làm gia vị cho món hầm và nước dùng phở.")],
        ["Hoa hồi thu hái ở rừng hồi {district}, phơi khô, cánh đều, mùi thơm đậm.",
         "Hồi được đồng bào Tày, Dao ở {locality} thu hái khi quả già, sấy khô tự nhiên."],
        keep="Bảo quản nơi khô ráo, đậy kín để giữ mùi thơm.",
    ),
    "mang": Kind(
        "Măng khô {place}", "MANG-KHO", FOOD,
        ["Bình Liêu", "Ba Chẽ", "Tiên Yên", "Đầm Hà", "Hải Hà", "Hạ Long", "Cẩm Phả", "Uông Bí"],
        [V("túi 500g", "500G", 130, 190), V("túi 200g", "200G", 55, 80),
         V("lọ 500g", "500G", 40, 60, name="Măng chua {place}", stem="MANG-CHUA",
           intro=["Măng rừng tươi của {locality}, {district} được thái lát và muối chua trong lọ thủy tinh, không chất bảo quản."],
           note="Đậy kín nắp và bảo quản ngăn mát sau khi mở.")],
        ["Măng rừng được luộc và phơi khô bằng nắng tự nhiên tại {locality}, {district}.",
         "Măng khô thái lát dày, màu vàng nâu, ngâm nở mềm, dùng nấu canh hoặc xào."],
        keep="Bảo quản nơi khô ráo, thoáng mát.",
    ),
    "moc_nhi": Kind(
        "Mộc nhĩ {place}", "MOC-NHI", FOOD, ["Bình Liêu", "Ba Chẽ", "Tiên Yên"],
        [V("túi 200g", "200G", 45, 70), V("túi 500g", "500G", 100, 150)],
        ["Mộc nhĩ trồng trên thân gỗ tự nhiên tại {locality}, {district}, tai dày, giòn.",
         "Mộc nhĩ được phơi khô, nhặt sạch chân, dùng nấu miến, làm nem hoặc xào."],
        keep="Bảo quản nơi khô ráo; ngâm nước ấm trước khi chế biến.",
    ),
    "banh_gio": Kind(
        "Bánh gio {place}", "BANH-GIO", FOOD, ["Bình Liêu", "Tiên Yên", "Ba Chẽ"],
        [V("chục 10 chiếc", "10C", 40, 70)],
        ["Bánh gio làm từ gạo nếp ngâm nước tro, gói lá dong, luộc chín theo cách của đồng bào {district}.",
         "Bánh gio màu vàng trong, dẻo, mát, ăn kèm mật mía hoặc đường."],
        keep="Bảo quản ngăn mát, dùng trong 5 ngày.",
        stock=STOCK_FRESH,
    ),
    "banh_gat_gu": Kind(
        "Bánh gật gù {place}", "BANH-GAT-GU", FOOD, ["Tiên Yên", "Quảng Yên"],
        [V("túi 500g", "500G", 25, 40), V("khay 1kg", "1KG", 45, 70)],
        ["Bánh gật gù tráng từ bột gạo tẻ xay cùng một ít cơm nguội, cuộn tròn không nhân nên dẻo và mềm.",
         "Món bánh quen thuộc của {district}, ăn kèm nước mắm chưng mỡ hành và thịt băm."],
        keep="Dùng trong ngày hoặc bảo quản ngăn mát.",
        stock=STOCK_FRESH,
    ),
    "gao_nep": Kind(
        "Gạo nếp cái hoa vàng {place}", "GAO-NEP-CAI-HOA-VANG", FOOD, ["Đông Triều"],
        [V("túi 2kg", "2KG", 70, 100), V("túi 5kg", "5KG", 170, 240)],
        ["Gạo nếp cái hoa vàng trồng tại cánh đồng {locality}, {district}, hạt tròn, dẻo, thơm.",
         "Gạo nếp cái hoa vàng {district} dùng đồ xôi, gói bánh chưng hoặc nấu rượu."],
        keep="Bảo quản nơi khô ráo, tránh ẩm.",
    ),
    "na": Kind(
        "Na dai {place}", "NA-DAI", FOOD, ["Đông Triều"],
        [V("hộp 2kg", "2KG", 90, 150)],
        ["Na dai {district} trồng trên sườn đồi, quả to, múi dày, ngọt đậm.",
         "Quả được thu hái khi vừa già, xếp hộp giấy có lót đệm để vận chuyển."],
        keep="Để ở nhiệt độ phòng 1–2 ngày cho quả chín mềm.",
        stock=STOCK_FRESH,
    ),
    "vai": Kind(
        "Vải chín sớm Phương Nam", "VAI-CHIN-SOM", FOOD, ["Uông Bí"],
        [V("thùng 5kg", "5KG", 150, 250), V("hộp 2kg", "2KG", 70, 110)],
        ["Vải chín sớm trồng ở Phương Nam, Uông Bí, thu hoạch từ cuối tháng 5, cùi dày, ngọt thanh.",
         "Vải được hái vào buổi sáng, cắt cành và đóng thùng trong ngày."],
        keep="Bảo quản ngăn mát để giữ quả tươi lâu.",
        stock=STOCK_FRESH,
    ),
    "rau_ma": Kind(
        "Rau má {place}", "RAU-MA", FOOD, ["Quảng Yên", "Đông Triều"],
        [V("túi 500g", "500G", 20, 35)],
        ["Rau má trồng theo hướng hữu cơ tại {locality}, {district}, lá to, xanh mướt.",
         "Rau má được thu hái buổi sáng, rửa sạch, đóng túi trong ngày."],
        keep="Bảo quản ngăn mát, dùng trong 2 ngày.",
        stock=STOCK_FRESH,
    ),
    "o_mai_mo": Kind(
        "Ô mai mơ Yên Tử", "O-MAI-MO", FOOD, ["Uông Bí", "Đông Triều"],
        [V("hộp 300g", "300G", 70, 110), V("túi 500g", "500G", 100, 150)],
        ["Ô mai làm từ quả mơ lông Yên Tử, tẩm gừng, cam thảo và đường, vị chua ngọt.",
         "Mơ được chọn quả già, rửa sạch, phơi sấy nhiều lần theo cách làm thủ công của {producer}."],
        keep="Bảo quản nơi khô ráo, đậy kín sau khi mở.",
    ),
    # ---- Đồ uống ----------------------------------------------------------
    "tra_hoa_vang": Kind(
        "Trà hoa vàng {place}", "TRA-HOA-VANG", DRINK, ["Ba Chẽ", "Hạ Long", "Hải Hà"],
        [V("hộp 100g", "100G", 300, 600), V("hộp 50g", "50G", 170, 320),
         V("hộp 20 túi lọc", "TUI-LOC", 150, 250, sfx="túi lọc",
           note="Hoa và lá trà hoa vàng được nghiền thô, đóng túi lọc tiện pha."),
         V("túi 200g", "200G", 90, 150, name="Trà lá hoa vàng {place}", stem="TRA-LA-HOA-VANG",
           intro=["Lá trà hoa vàng hái từ vườn dưới tán rừng {district}, vò và sao khô theo cách làm chè xanh."],
           note="Pha uống hằng ngày như trà xanh, nước vàng nhạt, vị ngọt dịu.")],
        ["Hoa trà hoa vàng được hái từ vườn trồng dưới tán rừng {district}, sấy lạnh để giữ màu vàng tự nhiên.",
         "Trà hoa vàng (Camellia chrysantha) là cây quý của vùng núi {district}; nước trà vàng sáng, vị ngọt hậu.",
         "Bông hoa được tuyển chọn thủ công tại {locality}, sấy ở nhiệt độ thấp, không phụ gia."],
        keep="Hãm 3–5 bông với nước khoảng 90 °C trong 5 phút.",
    ),
    "che_duong_hoa": Kind(
        "Chè xanh Đường Hoa", "CHE-DUONG-HOA", DRINK, ["Hải Hà"],
        [V("gói 200g", "200G", 80, 130), V("gói 500g", "500G", 180, 280),
         V("hộp 200g", "200G", 180, 260, name="Chè búp đặc biệt Đường Hoa", stem="CHE-BUP-DUONG-HOA",
           note="Chỉ hái một tôm hai lá, sao thủ công theo mẻ nhỏ.")],
        ["Chè trồng trên đồi Đường Hoa, Hải Hà; búp non được sao thủ công trên chảo gang.",
         "Nước chè xanh trong, vị chát dịu, hậu ngọt, thơm mùi cốm."],
        keep="Bảo quản trong túi kín, tránh ẩm và mùi lạ.",
    ),
    "ruou_ba_kich": Kind(
        "Rượu ba kích {place}", "RUOU-BA-KICH", DRINK, ["Ba Chẽ", "Tiên Yên"],
        [V("chai 500ml", "500ML", 150, 280), V("chai 750ml", "750ML", 230, 400),
         V("bình gốm 2 lít", "BINH-2L", 550, 900, sfx="bình gốm")],
        ["Rượu ngâm từ củ ba kích tím {district} đã rút lõi với rượu gạo nấu thủ công, màu tím đỏ.",
         "Ba kích tím trồng trên 3 năm được ngâm với rượu gạo từ 6 tháng trở lên, vị ngọt dịu."],
        keep=ALC,
    ),
    "ruou_nam_lim": Kind(
        "Rượu nấm lim xanh {place}", "RUOU-NAM-LIM", DRINK, ["Ba Chẽ"],
        [V("chai 500ml", "500ML", 180, 320)],
        ["Rượu ngâm từ nấm lim xanh rừng {district} với rượu gạo, màu nâu đỏ, vị đắng nhẹ.",
         "Nấm lim được thái lát, sấy khô rồi ngâm rượu gạo nấu thủ công từ 3 tháng trở lên."],
        keep=ALC,
    ),
    "ruou_mo": Kind(
        "Rượu mơ Yên Tử", "RUOU-MO-YEN-TU", DRINK, ["Uông Bí", "Đông Triều"],
        [V("chai 500ml", "500ML", 120, 200), V("chai 750ml", "750ML", 180, 280),
         V("hộp 2 chai 500ml", "HQ-2C", 280, 420, sfx="hộp quà")],
        ["Rượu ngâm từ quả mơ lông Yên Tử với rượu gạo, màu hổ phách, vị chua ngọt hài hòa.",
         "Mơ được hái vào tháng 4 ở vùng núi Yên Tử, ngâm từ 6 tháng trở lên trước khi đóng chai."],
        keep=ALC,
    ),
    "siro_mo": Kind(
        "Siro mơ Yên Tử", "SIRO-MO", DRINK, ["Uông Bí"],
        [V("chai 500ml", "500ML", 70, 110)],
        ["Siro làm từ quả mơ lông Yên Tử ngâm đường phèn, vị chua ngọt tự nhiên.",
         "Pha với nước lọc và đá để giải khát, không dùng phẩm màu."],
        keep="Bảo quản ngăn mát sau khi mở nắp.",
    ),
    "tra_yen_tu": Kind(
        "Trà xanh Yên Tử", "TRA-XANH-YEN-TU", DRINK, ["Uông Bí"],
        [V("gói 200g", "200G", 90, 150), V("hộp 500g", "500G", 200, 320)],
        ["Chè xanh trồng ở vùng chân núi Yên Tử, sao thủ công, nước xanh, vị chát nhẹ.",
         "Búp chè được hái sáng sớm tại {locality}, sao ngay trong ngày để giữ hương."],
        keep="Bảo quản trong túi kín, tránh ẩm.",
    ),
    "ruou_nep": Kind(
        "Rượu nếp cái hoa vàng {place}", "RUOU-NEP", DRINK, ["Đông Triều"],
        [V("chai 500ml", "500ML", 60, 100), V("can 2 lít", "2L", 180, 260)],
        ["Rượu nấu thủ công từ gạo nếp cái hoa vàng {district} và men lá, hạ thổ trước khi đóng chai.",
         "Rượu trong, êm, thơm mùi nếp; độ cồn khoảng 29–35 độ."],
        keep=ALC,
    ),
    "bot_rau_ma": Kind(
        "Bột rau má {place}", "BOT-RAU-MA", DRINK, ["Quảng Yên", "Đông Triều"],
        [V("hộp 100g", "100G", 80, 120),
         V("hộp 20 túi lọc", "TUI-LOC", 60, 90, name="Trà rau má {place} túi lọc", stem="TRA-RAU-MA",
           note="Rau má sấy khô được đóng túi lọc, hãm với nước sôi 3–5 phút.")],
        ["Rau má tươi được sấy lạnh và nghiền mịn, giữ màu xanh và vị mát tự nhiên.",
         "Rau má trồng tại {locality}, {district}, sơ chế và đóng gói ngay tại cơ sở."],
        keep="Pha với nước ấm hoặc sữa, dùng giải nhiệt hằng ngày.",
    ),
    # ---- Thảo dược ---------------------------------------------------------
    "ba_kich": Kind(
        "Ba kích tím {place}", "BA-KICH-TIM", HERB, ["Ba Chẽ", "Tiên Yên"],
        [V("túi 1kg", "1KG", 150, 250, note="Củ ba kích tươi, rửa sạch đất, dùng ngâm rượu hoặc sao khô."),
         V("túi 500g", "500G", 300, 500, name="Ba kích khô {place}", stem="BA-KICH-KHO",
           note="Củ ba kích đã rút lõi, phơi sấy khô, dùng ngâm rượu hoặc sắc nước."),
         V("túi 1kg", "1KG", 550, 900, name="Ba kích khô {place}", stem="BA-KICH-KHO",
           note="Củ ba kích đã rút lõi, phơi sấy khô, dùng ngâm rượu hoặc sắc nước."),
         V("lọ 500g", "500G", 250, 380, name="Ba kích tím ngâm mật ong {place}", stem="BA-KICH-MAT-ONG",
           note="Ba kích rút lõi ngâm mật ong rừng, dùng ăn trực tiếp."),
         V("hộp 20 túi lọc", "TUI-LOC", 90, 140, name="Trà ba kích {place} túi lọc", stem="TRA-BA-KICH",
           note="Ba kích thái lát, sao vàng, đóng túi lọc tiện dùng.")],
        ["Ba kích tím (Morinda officinalis) trồng dưới tán rừng {district} từ 3 năm trở lên, củ to, ruột tím.",
         "Ba kích do {producer} trồng và thu hoạch tại {locality}, củ được rửa sạch và phân loại."],
    ),
    "nam_lim": Kind(
        "Nấm lim xanh {place}", "NAM-LIM-XANH", HERB, ["Tiên Yên", "Ba Chẽ"],
        [V("hộp 500g", "500G", 650, 1200), V("túi 200g", "200G", 280, 480),
         V("hộp 1kg", "NGUYEN-TAI-1KG", 1200, 2200, sfx="nguyên tai",
           note="Nấm để nguyên tai, phơi khô tự nhiên.")],
        ["Nấm lim xanh mọc tự nhiên trên thân cây lim già ở rừng {district}, được làm sạch, thái lát và sấy khô.",
         "Nấm lim xanh thu hái tại rừng {locality}, sơ chế và sấy ở nhiệt độ thấp."],
        keep="Dùng sắc nước uống hoặc hãm như trà; bảo quản nơi khô ráo.",
        stock=(5, 120),
    ),
    "sam_cau": Kind(
        "Sâm cau {place}", "SAM-CAU", HERB, ["Bình Liêu", "Ba Chẽ", "Tiên Yên"],
        [V("túi 500g", "500G", 150, 250),
         V("túi 1kg", "1KG", 180, 280, name="Sâm cau tươi {place}", stem="SAM-CAU-TUOI",
           intro=["Củ sâm cau (tiên mao) tươi đào dưới tán rừng {district}, rửa sạch đất và để ráo trước khi đóng túi."],
           note="Dùng ngâm rượu hoặc thái lát phơi khô; bảo quản ngăn mát.")],
        ["Sâm cau (tiên mao) mọc dưới tán rừng {district}, thân rễ được rửa sạch, thái lát, phơi khô.",
         "Sâm cau được đồng bào ở {locality} thu hái và sơ chế theo kinh nghiệm truyền thống."],
        keep="Dùng ngâm rượu, sắc nước hoặc hầm với thịt.",
    ),
    "tinh_dau_hoi": Kind(
        "Tinh dầu hồi {place}", "TINH-DAU-HOI", HERB, ["Bình Liêu"],
        [V("lọ 10ml", "10ML", 45, 70), V("lọ 50ml", "50ML", 180, 260), V("chai 100ml", "100ML", 320, 450)],
        ["Tinh dầu hồi được chưng cất từ hoa và lá hồi {district}, mùi thơm ấm, dùng xoa bóp hoặc xông.",
         "Tinh dầu nguyên chất chưng cất bằng hơi nước tại {locality}, không pha hương liệu."],
        keep="Không dùng cho trẻ dưới 2 tuổi; tránh tiếp xúc với mắt.",
    ),
    "tinh_dau_que": Kind(
        "Tinh dầu quế {place}", "TINH-DAU-QUE", HERB, ["Tiên Yên", "Ba Chẽ", "Đầm Hà", "Hải Hà"],
        [V("lọ 10ml", "10ML", 35, 60), V("lọ 50ml", "50ML", 140, 220)],
        ["Tinh dầu quế chưng cất từ vỏ và lá quế trồng ở {district}, hương thơm ấm, giúp xua côn trùng.",
         "Quế được trồng trên đồi {locality}, lá và vỏ được chưng cất bằng hơi nước."],
        keep="Pha loãng trước khi thoa lên da; tránh tiếp xúc với mắt.",
    ),
    "la_tam": Kind(
        "Lá tắm người Dao {place}", "LA-TAM-DAO", HERB, ["Ba Chẽ", "Bình Liêu", "Tiên Yên", "Đầm Hà", "Hải Hà"],
        [V("gói 10 túi", "10T", 60, 90), V("túi 500g", "500G", 90, 140)],
        ["Bài lá tắm gồm nhiều loại lá rừng do người Dao ở {locality}, {district} thu hái, phơi khô và đóng gói.",
         "Nấu nước lá để tắm hoặc ngâm chân, giúp thư giãn và làm ấm cơ thể."],
        keep="Bảo quản nơi khô ráo; không dùng cho phụ nữ có thai.",
    ),
    "cao_hoa_vang": Kind(
        "Cao trà hoa vàng {place}", "CAO-TRA-HOA-VANG", HERB, ["Ba Chẽ"],
        [V("lọ 100g", "100G", 350, 550)],
        ["Cao được cô đặc từ lá và hoa trà hoa vàng {district}, pha với nước ấm uống hằng ngày.",
         "Nguyên liệu thu hái tại {locality}, nấu cô đặc ở nhiệt độ thấp."],
        keep="Bảo quản ngăn mát sau khi mở nắp.",
    ),
    "giao_co_lam": Kind(
        "Trà giảo cổ lam {place}", "GIAO-CO-LAM", HERB, ["Ba Chẽ", "Bình Liêu", "Đầm Hà"],
        [V("túi 500g", "500G", 120, 180),
         V("hộp 20 túi lọc", "TUI-LOC", 70, 110, sfx="túi lọc")],
        ["Giảo cổ lam trồng dưới tán rừng {locality}, {district}, thu hái cả dây lá và sấy khô.",
         "Trà giảo cổ lam có vị đắng nhẹ rồi ngọt hậu, hãm với nước sôi để uống hằng ngày."],
        keep="Bảo quản nơi khô ráo.",
    ),
    "ca_gai_leo": Kind(
        "Cà gai leo {place}", "CA-GAI-LEO", HERB, ["Đầm Hà", "Hải Hà"],
        [V("túi 500g", "500G", 80, 120),
         V("hộp 20 túi lọc", "TUI-LOC", 60, 90, name="Trà cà gai leo {place} túi lọc", stem="TRA-CA-GAI-LEO")],
        ["Cà gai leo được trồng theo hướng hữu cơ tại {locality}, thu hái cả thân lá, thái nhỏ và sấy khô.",
         "Dược liệu do {producer} trồng và sơ chế, đóng gói ngay tại vùng trồng."],
        keep="Bảo quản nơi khô ráo, tránh ánh nắng.",
    ),
    # ---- Thủ công mỹ nghệ --------------------------------------------------
    "gom_binh": Kind(
        "Bình hoa gốm {place}", "BINH-GOM", CRAFT, POTTERY_DISTRICTS,
        [V("cái cao 30cm", "30CM", 350, 700), V("cái cao 50cm", "50CM", 800, 1500)],
        POTTERY_INTRO, keep=POTTERY_KEEP, stock=STOCK_CRAFT,
    ),
    "gom_am": Kind(
        "Bộ ấm chén gốm {place}", "AM-CHEN-GOM", CRAFT, POTTERY_DISTRICTS,
        [V("bộ 1 ấm 6 chén", "BO7", 350, 750)],
        POTTERY_INTRO, keep=POTTERY_KEEP, stock=STOCK_CRAFT,
    ),
    "gom_chau": Kind(
        "Chậu cảnh gốm {place}", "CHAU-GOM", CRAFT, POTTERY_DISTRICTS,
        [V("cái đường kính 30cm", "30CM", 180, 350), V("cái đường kính 50cm", "50CM", 450, 800)],
        POTTERY_INTRO, keep=POTTERY_KEEP, stock=STOCK_CRAFT,
    ),
    "gom_lo": Kind(
        "Lọ hoa gốm men rạn {place}", "LO-GOM-MEN-RAN", CRAFT, POTTERY_DISTRICTS,
        [V("cái cao 25cm", "25CM", 250, 450)],
        POTTERY_INTRO, keep=POTTERY_KEEP, stock=STOCK_CRAFT,
    ),
    "gom_dia": Kind(
        "Đĩa gốm trang trí {place}", "DIA-GOM", CRAFT, POTTERY_DISTRICTS,
        [V("cái đường kính 30cm", "30CM", 200, 400)],
        POTTERY_INTRO, keep=POTTERY_KEEP, stock=STOCK_CRAFT,
    ),
    "gom_bat": Kind(
        "Bộ bát đĩa gốm men lam {place}", "BAT-DIA-GOM", CRAFT, POTTERY_DISTRICTS,
        [V("bộ 10 món", "BO10", 450, 850)],
        POTTERY_INTRO, keep=POTTERY_KEEP, stock=STOCK_CRAFT,
    ),
    "may_tre": Kind(
        "Giỏ mây tre đan {place}", "GIO-MAY-TRE", CRAFT, ["Quảng Yên", "Tiên Yên", "Đông Triều", "Đầm Hà"],
        [V("cái", "CAI", 80, 180),
         V("bộ 3 cái", "BO3", 120, 220, name="Khay mây tre đan {place}", stem="KHAY-MAY-TRE"),
         V("cái", "CAI", 90, 160, name="Làn tre đan {place}", stem="LAN-TRE"),
         V("cái", "CAI", 60, 120, name="Hộp mây đựng trà {place}", stem="HOP-MAY"),
         V("cái", "CAI", 150, 350, name="Chao đèn mây tre {place}", stem="CHAO-DEN-MAY-TRE")],
        ["Sản phẩm đan thủ công từ mây, tre khai thác tại {district}, nan được luộc và sấy chống mốc trước khi đan.",
         "Mỗi sản phẩm do thợ đan ở {locality} làm hoàn toàn bằng tay, nan đều, chắc chắn."],
        keep="Tránh để nơi ẩm ướt lâu ngày.",
        stock=STOCK_CRAFT,
    ),
    "than_da": Kind(
        "Tranh than đá {place}", "TRANH-THAN-DA", CRAFT, ["Hạ Long", "Cẩm Phả"],
        [V("bức 30x40cm", "30X40", 350, 650), V("bức 60x90cm", "60X90", 1200, 2200),
         V("cái cao 20cm", "20CM", 250, 450, name="Tượng than đá {place}", stem="TUONG-THAN-DA")],
        ["Sản phẩm được chạm khắc thủ công trên than đá antraxit Quảng Ninh, đề tài vịnh Hạ Long và phong cảnh vùng mỏ.",
         "Than đá được tuyển chọn, cắt, mài và đánh bóng, phủ lớp bảo vệ chống bám bụi."],
        keep="Lau bằng khăn khô, tránh va đập mạnh.",
        stock=STOCK_CRAFT,
    ),
    "tho_cam": Kind(
        "Túi thổ cẩm {place}", "TUI-THO-CAM", CRAFT, ["Bình Liêu"],
        [V("cái", "CAI", 150, 300),
         V("chiếc", "CHIEC", 120, 250, name="Khăn thổ cẩm {place}", stem="KHAN-THO-CAM"),
         V("chiếc", "CHIEC", 60, 120, name="Ví thổ cẩm {place}", stem="VI-THO-CAM")],
        ["Vải thổ cẩm do phụ nữ Dao Thanh Phán ở {locality}, {district} dệt và thêu tay với hoa văn truyền thống.",
         "Hoa văn thêu bằng chỉ màu đỏ, vàng, trắng; mỗi sản phẩm mất nhiều ngày để hoàn thiện."],
        keep="Giặt tay nhẹ bằng nước lạnh, phơi trong bóng râm.",
        stock=STOCK_CRAFT,
    ),
    "ngoc_trai": Kind(
        "Vòng cổ ngọc trai {place}", "VONG-NGOC-TRAI", CRAFT, ["Hạ Long", "Vân Đồn"],
        [V("chiếc", "CHIEC", 600, 1500),
         V("đôi", "DOI", 250, 600, name="Bông tai ngọc trai {place}", stem="BONG-TAI-NGOC-TRAI")],
        ["Ngọc trai nuôi cấy tại vùng biển {district}, được tuyển chọn hạt tròn, ánh xà cừ đều.",
         "Sản phẩm chế tác tại xưởng của {producer}, kèm hộp đựng và giấy giới thiệu nguồn gốc."],
        keep="Tránh tiếp xúc với nước hoa và hóa chất; lau bằng khăn mềm.",
        stock=STOCK_CRAFT,
    ),
    # ---- Dịch vụ du lịch ---------------------------------------------------
    "dv_cong_dong": Kind(
        "Trải nghiệm du lịch cộng đồng {place}", "DL-CONG-DONG", TOUR,
        ["Bình Liêu", "Ba Chẽ", "Tiên Yên", "Cô Tô", "Uông Bí"],
        [V("suất/người (1 ngày)", "1N", 350, 650)],
        ["Hành trình một ngày ở {locality}, {district}: tham quan làng quê, tìm hiểu nghề truyền thống và thưởng thức ẩm thực địa phương.",
         "Chương trình do {producer} tổ chức, hướng dẫn viên là người địa phương."],
        keep="Giá đã gồm bữa trưa, nước uống và vé tham quan; đặt trước ít nhất 2 ngày.",
        stock=STOCK_TOUR,
    ),
    "dv_homestay": Kind(
        "Homestay {place}", "HOMESTAY", TOUR, ["Bình Liêu", "Vân Đồn", "Cô Tô"],
        [V("phòng/đêm", "DEM", 350, 800)],
        ["Phòng nghỉ tại nhà dân ở {locality}, {district}, có bữa sáng và hỗ trợ đặt tour tham quan.",
         "Không gian gần gũi thiên nhiên, đón khách theo nhóm nhỏ."],
        keep="Nhận phòng từ 14 giờ, trả phòng trước 12 giờ.",
        stock=STOCK_TOUR,
    ),
    "dv_hoa_vang": Kind(
        "Trải nghiệm vườn trà hoa vàng {place}", "DL-TRA-HOA-VANG", TOUR, ["Ba Chẽ", "Hạ Long"],
        [V("suất/người", "SUAT", 250, 450)],
        ["Tham quan vườn trà hoa vàng dưới tán rừng {district}, tự tay hái hoa và thưởng trà cùng người trồng.",
         "Chương trình nửa ngày tại {locality}, phù hợp mùa hoa từ tháng 12 đến tháng 3."],
        keep="Đặt trước ít nhất 1 ngày.",
        stock=STOCK_TOUR,
    ),
    "dv_gom": Kind(
        "Trải nghiệm làm gốm {place}", "DL-LAM-GOM", TOUR, ["Đông Triều"],
        [V("suất/người", "SUAT", 200, 400)],
        ["Tự tay nặn, vuốt và trang trí một sản phẩm gốm dưới sự hướng dẫn của nghệ nhân {district}.",
         "Sản phẩm của khách được tráng men, nung và gửi về sau khoảng 2 tuần."],
        keep="Phù hợp cho gia đình và nhóm học sinh; đặt trước ít nhất 1 ngày.",
        stock=STOCK_TOUR,
    ),
    "dv_doi_che": Kind(
        "Tham quan đồi chè Đường Hoa", "DL-DOI-CHE", TOUR, ["Hải Hà"],
        [V("suất/người", "SUAT", 150, 300)],
        ["Đi bộ trên đồi chè Đường Hoa, xem sao chè thủ công và thưởng thức chè xanh tại xưởng.",
         "Chương trình nửa ngày do {producer} tổ chức, có người hướng dẫn địa phương."],
        keep="Giá đã gồm nước uống và một gói chè 100g làm quà.",
        stock=STOCK_TOUR,
    ),
    "dv_yen_tu": Kind(
        "Trải nghiệm văn hóa Yên Tử", "DL-YEN-TU", TOUR, ["Uông Bí"],
        [V("suất/người (1 ngày)", "1N", 300, 600)],
        ["Hành trình một ngày ở vùng đệm Yên Tử: tham quan làng quê, học làm món chay và thưởng trà cùng người địa phương.",
         "Chương trình do {producer} tổ chức, có hướng dẫn viên thuyết minh về lịch sử Thiền phái Trúc Lâm."],
        keep="Giá chưa gồm vé cáp treo Yên Tử.",
        stock=STOCK_TOUR,
    ),
}

# Generic closing sentences, by category.
CLOSING: dict[str, list[str]] = {
    FOOD: ["Sản phẩm của {producer} ({locality}, {district}).",
           "Bao bì ghi rõ ngày sản xuất, hạn sử dụng và mã truy xuất nguồn gốc.",
           "Thích hợp làm quà biếu khi đến Quảng Ninh."],
    DRINK: ["Sản phẩm của {producer} ({locality}, {district}).",
            "Bao bì ghi rõ ngày sản xuất, hạn sử dụng và mã truy xuất nguồn gốc.",
            "Thích hợp làm quà biếu khi đến Quảng Ninh."],
    HERB: ["Sản phẩm của {producer} ({locality}, {district}).",
           "Sản phẩm không phải là thuốc, không có tác dụng thay thế thuốc chữa bệnh.",
           "Nguyên liệu có nguồn gốc rõ ràng, được kiểm tra trước khi đóng gói."],
    CRAFT: ["Sản phẩm của {producer} ({locality}, {district}).",
            "Mỗi sản phẩm làm thủ công nên hoa văn và kích thước có thể chênh lệch đôi chút.",
            "Thích hợp trang trí nhà cửa hoặc làm quà lưu niệm."],
    TOUR: ["Dịch vụ do {producer} ({locality}, {district}) cung cấp.",
           "Có thể điều chỉnh lịch trình theo nhóm khách."],
}


# --------------------------------------------------------------------------
# 3. Producers: (name, kind, district, commune/ward, product kinds).
# The producer code is derived from the name. Producers are illustrative.
# --------------------------------------------------------------------------
COOP, HOUSEHOLD, ENTERPRISE = "cooperative", "household", "enterprise"

PRODUCERS: list[tuple[str, str, str, str, list[str]]] = [
    # Bình Liêu
    ("HTX Miến dong Bình Liêu", COOP, "Bình Liêu", "Đồng Tâm", ["mien", "khoai_so", "mang", "banh_gio"]),
    ("HTX Nông lâm sản Hoành Mô", COOP, "Bình Liêu", "Hoành Mô", ["mien", "hoi", "mat_ong", "moc_nhi"]),
    ("HTX Dầu sở Đồng Văn", COOP, "Bình Liêu", "Đồng Văn", ["dau_so", "hoi", "tinh_dau_hoi"]),
    ("Hộ kinh doanh Lục Thị Mai", HOUSEHOLD, "Bình Liêu", "Lục Hồn", ["mien", "mang", "banh_gio"]),
    ("Cơ sở Miến dong Tình Húc", HOUSEHOLD, "Bình Liêu", "Tình Húc", ["mien", "khoai_so"]),
    ("HTX Du lịch cộng đồng Bình Liêu", COOP, "Bình Liêu", "Đồng Văn", ["dv_cong_dong", "dv_homestay"]),
    ("Hộ kinh doanh Nông Văn Thắng", HOUSEHOLD, "Bình Liêu", "Vô Ngại", ["moc_nhi", "sam_cau", "la_tam"]),
    ("Công ty TNHH Hồi Lục Hồn", ENTERPRISE, "Bình Liêu", "Lục Hồn", ["tinh_dau_hoi", "hoi", "dau_so"]),
    ("Cơ sở Thổ cẩm Dao Thanh Phán", HOUSEHOLD, "Bình Liêu", "Húc Động", ["tho_cam"]),
    # Ba Chẽ
    ("HTX Trà hoa vàng Ba Chẽ", COOP, "Ba Chẽ", "Thanh Sơn", ["tra_hoa_vang", "cao_hoa_vang", "dv_hoa_vang"]),
    ("HTX Ba kích Ba Chẽ", COOP, "Ba Chẽ", "Đạp Thanh", ["ba_kich", "ruou_ba_kich"]),
    ("Công ty TNHH Dược liệu Nam Sơn", ENTERPRISE, "Ba Chẽ", "Nam Sơn",
     ["ba_kich", "giao_co_lam", "sam_cau", "tinh_dau_que"]),
    ("HTX Lâm sản Thanh Lâm", COOP, "Ba Chẽ", "Thanh Lâm", ["nam_lim", "ruou_nam_lim", "moc_nhi", "mat_ong"]),
    ("Hộ kinh doanh Bàn Văn Hùng", HOUSEHOLD, "Ba Chẽ", "Đồn Đạc", ["ruou_ba_kich", "mat_ong", "mang"]),
    ("Hộ kinh doanh Triệu Thị Liên", HOUSEHOLD, "Ba Chẽ", "Lương Mông", ["tra_hoa_vang", "la_tam", "banh_gio"]),
    ("HTX Nông nghiệp Minh Cầm", COOP, "Ba Chẽ", "Minh Cầm", ["ga_doi", "khoai_so", "mang", "moc_nhi"]),
    ("Cơ sở Trà hoa vàng Nam Sơn", HOUSEHOLD, "Ba Chẽ", "Nam Sơn", ["tra_hoa_vang", "cao_hoa_vang"]),
    ("HTX Du lịch cộng đồng Ba Chẽ", COOP, "Ba Chẽ", "Thanh Sơn", ["dv_cong_dong", "hoi", "la_tam"]),
    # Tiên Yên
    ("HTX Gà Tiên Yên", COOP, "Tiên Yên", "Phong Dụ", ["ga"]),
    ("HTX Nông sản Hà Lâu", COOP, "Tiên Yên", "Hà Lâu", ["ga", "mang", "khoai_so", "banh_gio"]),
    ("Công ty TNHH Nấm lim Đông Ngũ", ENTERPRISE, "Tiên Yên", "Đông Ngũ", ["nam_lim", "tinh_dau_que", "sam_cau"]),
    ("Hộ kinh doanh Vi Văn Sơn", HOUSEHOLD, "Tiên Yên", "Điền Xá", ["ba_kich", "ruou_ba_kich", "mat_ong"]),
    ("Cơ sở chăn nuôi gà Đông Hải", HOUSEHOLD, "Tiên Yên", "Đông Hải", ["ga"]),
    ("HTX Mây tre đan Tiên Lãng", COOP, "Tiên Yên", "Tiên Lãng", ["may_tre"]),
    ("Hộ kinh doanh Hoàng Thị Thu", HOUSEHOLD, "Tiên Yên", "Yên Than", ["moc_nhi", "hoi", "banh_gat_gu"]),
    ("HTX Thủy sản Đồng Rui", COOP, "Tiên Yên", "Đồng Rui", ["trung_vit_bien", "tom_kho", "hau", "dv_cong_dong"]),
    ("Cơ sở Bánh gật gù Tiên Yên", HOUSEHOLD, "Tiên Yên", "Hải Lạng", ["banh_gat_gu", "banh_gio"]),
    # Đầm Hà
    ("HTX Nông nghiệp Quảng Lâm", COOP, "Đầm Hà", "Quảng Lâm", ["mat_ong", "mang", "giao_co_lam", "ga_doi"]),
    ("Hộ kinh doanh Phạm Văn Tuấn", HOUSEHOLD, "Đầm Hà", "Đại Bình", ["tom_kho", "cha_ca"]),
    ("HTX Dược liệu Quảng An", COOP, "Đầm Hà", "Quảng An", ["tinh_dau_que", "ca_gai_leo", "la_tam"]),
    ("Cơ sở Mây tre đan Tân Bình", HOUSEHOLD, "Đầm Hà", "Tân Bình", ["may_tre"]),
    ("Hộ kinh doanh Đỗ Văn Long", HOUSEHOLD, "Đầm Hà", "Dực Yên", ["lon_mong_cai", "ga_doi"]),
    # Hải Hà
    ("HTX Chè Đường Hoa", COOP, "Hải Hà", "Đường Hoa", ["che_duong_hoa", "dv_doi_che"]),
    ("Hộ kinh doanh Ngô Thị Hạnh", HOUSEHOLD, "Hải Hà", "Quảng Long", ["che_duong_hoa", "mat_ong"]),
    ("HTX Thủy sản Cái Chiên", COOP, "Hải Hà", "Cái Chiên", ["ngan", "tom_kho", "hau"]),
    ("Công ty TNHH Thực phẩm Quảng Hà", ENTERPRISE, "Hải Hà", "Quảng Hà", ["lon_mong_cai", "cha_ca", "tom_kho"]),
    ("Cơ sở Dược liệu Quảng Sơn", HOUSEHOLD, "Hải Hà", "Quảng Sơn", ["ca_gai_leo", "tinh_dau_que", "la_tam"]),
    ("HTX Nông nghiệp Quảng Thành", COOP, "Hải Hà", "Quảng Thành", ["ga_doi", "mang", "tra_hoa_vang"]),
    # Móng Cái
    ("HTX Chăn nuôi lợn Móng Cái", COOP, "Móng Cái", "Hải Tiến", ["lon_mong_cai"]),
    ("Công ty TNHH Hải sản Trà Cổ", ENTERPRISE, "Móng Cái", "Trà Cổ", ["nuoc_mam", "sua", "muc_kho"]),
    ("Hộ kinh doanh Vũ Thị Lan", HOUSEHOLD, "Móng Cái", "Bình Ngọc", ["sua", "tom_kho", "cha_ca"]),
    ("HTX Thủy sản Vĩnh Trung", COOP, "Móng Cái", "Vĩnh Trung", ["sa_sung", "tu_hai"]),
    ("Hộ kinh doanh Trần Văn Hải", HOUSEHOLD, "Móng Cái", "Hải Xuân", ["lon_mong_cai"]),
    ("Cơ sở Chả mực Hải Hòa", HOUSEHOLD, "Móng Cái", "Hải Hòa", ["cha_muc", "muc_kho"]),
    # Vân Đồn
    ("HTX Nước mắm Cái Rồng", COOP, "Vân Đồn", "Cái Rồng", ["nuoc_mam_cai_rong"]),
    ("Công ty TNHH Hải sản Đông Xá", ENTERPRISE, "Vân Đồn", "Đông Xá", ["nuoc_mam_cai_rong", "sua", "ruoc_muc"]),
    ("HTX Sá sùng Quan Lạn", COOP, "Vân Đồn", "Quan Lạn", ["sa_sung", "hai_sam", "ngan"]),
    ("Hộ kinh doanh Đào Văn Tiến", HOUSEHOLD, "Vân Đồn", "Minh Châu", ["sa_sung", "tu_hai", "muc_kho"]),
    ("HTX Thủy sản Bản Sen", COOP, "Vân Đồn", "Bản Sen", ["ngan", "tu_hai", "hau", "hai_sam"]),
    ("Công ty TNHH Ngọc trai Bái Tử Long", ENTERPRISE, "Vân Đồn", "Vạn Yên", ["ngoc_trai"]),
    ("Cơ sở Chả mực Cái Rồng", HOUSEHOLD, "Vân Đồn", "Cái Rồng", ["cha_muc", "cha_ca", "ruoc_hau"]),
    ("HTX Du lịch cộng đồng Quan Lạn", COOP, "Vân Đồn", "Quan Lạn", ["dv_homestay"]),
    ("Hộ kinh doanh Nguyễn Thị Hằng", HOUSEHOLD, "Vân Đồn", "Ngọc Vừng", ["ca_thu", "muc_kho", "hau"]),
    # Cô Tô
    ("HTX Dịch vụ thủy sản Cô Tô", COOP, "Cô Tô", "Đồng Tiến", ["sa_sung", "hai_sam", "muc_kho", "ca_thu"]),
    ("Hộ kinh doanh Lê Văn Quyết", HOUSEHOLD, "Cô Tô", "Thanh Lân", ["sa_sung", "ngan", "tu_hai"]),
    ("Cơ sở Hải sản khô Đồng Tiến", HOUSEHOLD, "Cô Tô", "Đồng Tiến", ["muc_kho", "ca_thu", "nuoc_mam"]),
    ("HTX Du lịch cộng đồng Thanh Lân", COOP, "Cô Tô", "Thanh Lân", ["dv_homestay", "dv_cong_dong"]),
    # Hạ Long
    ("Công ty TNHH Chả mực Hòn Gai", ENTERPRISE, "Hạ Long", "Hòn Gai", ["cha_muc", "ruoc_muc", "cha_ca"]),
    ("Cơ sở Chả mực Bãi Cháy", HOUSEHOLD, "Hạ Long", "Bãi Cháy", ["cha_muc", "muc_kho"]),
    ("Hộ kinh doanh Phạm Thị Nga", HOUSEHOLD, "Hạ Long", "Hùng Thắng", ["cha_muc", "sua", "cha_ca"]),
    ("HTX Trà hoa vàng Đồng Sơn", COOP, "Hạ Long", "Đồng Sơn", ["tra_hoa_vang", "mat_ong", "dv_hoa_vang"]),
    ("Hộ kinh doanh Vũ Văn Nam", HOUSEHOLD, "Hạ Long", "Hà Khánh", ["sua", "cha_ca"]),
    ("Cơ sở Tranh than đá Hà Tu", HOUSEHOLD, "Hạ Long", "Hà Tu", ["than_da"]),
    ("Công ty TNHH Ngọc trai Tuần Châu", ENTERPRISE, "Hạ Long", "Tuần Châu", ["ngoc_trai"]),
    ("HTX Nông nghiệp Sơn Dương", COOP, "Hạ Long", "Sơn Dương", ["mat_ong", "ga_doi", "mang"]),
    ("Hộ kinh doanh Đỗ Thị Thủy", HOUSEHOLD, "Hạ Long", "Cao Xanh", ["ruoc_muc", "muc_kho", "ca_thu"]),
    # Cẩm Phả
    ("Hộ kinh doanh Nguyễn Văn Cường", HOUSEHOLD, "Cẩm Phả", "Cửa Ông", ["cha_muc", "ruoc_muc"]),
    ("HTX Thủy sản Cẩm Hải", COOP, "Cẩm Phả", "Cẩm Hải", ["cha_ca", "muc_kho", "sua"]),
    ("Cơ sở Tranh than đá Cẩm Phú", HOUSEHOLD, "Cẩm Phả", "Cẩm Phú", ["than_da"]),
    ("HTX Nông nghiệp Dương Huy", COOP, "Cẩm Phả", "Dương Huy", ["mat_ong", "ga_doi", "mang"]),
    # Uông Bí
    ("HTX Vải chín sớm Phương Nam", COOP, "Uông Bí", "Phương Nam", ["vai"]),
    ("Công ty TNHH Mơ Yên Tử", ENTERPRISE, "Uông Bí", "Thượng Yên Công", ["ruou_mo", "o_mai_mo", "siro_mo"]),
    ("Hộ kinh doanh Lê Thị Hòa", HOUSEHOLD, "Uông Bí", "Phương Đông", ["ruou_mo", "o_mai_mo", "tra_yen_tu"]),
    ("HTX Du lịch Yên Tử", COOP, "Uông Bí", "Thượng Yên Công", ["dv_yen_tu", "dv_cong_dong", "tra_yen_tu"]),
    ("HTX Nông nghiệp Thượng Yên Công", COOP, "Uông Bí", "Thượng Yên Công", ["mat_ong", "mang"]),
    # Đông Triều
    ("Công ty TNHH Gốm Đức Chính", ENTERPRISE, "Đông Triều", "Đức Chính",
     ["gom_binh", "gom_am", "gom_chau", "gom_lo", "gom_dia"]),
    ("Cơ sở Gốm Hoàng Quế", HOUSEHOLD, "Đông Triều", "Hoàng Quế", ["gom_binh", "gom_chau", "gom_lo"]),
    ("HTX Gốm Mạo Khê", COOP, "Đông Triều", "Mạo Khê", ["gom_am", "gom_dia", "gom_bat", "dv_gom"]),
    ("HTX Nếp cái hoa vàng Yên Đức", COOP, "Đông Triều", "Yên Đức", ["gao_nep", "ruou_nep"]),
    ("HTX Na An Sinh", COOP, "Đông Triều", "An Sinh", ["na", "mat_ong"]),
    ("Hộ kinh doanh Vũ Văn Đức", HOUSEHOLD, "Đông Triều", "Tràng Lương", ["ruou_mo", "o_mai_mo", "gao_nep"]),
    ("HTX Rau má Hồng Phong", COOP, "Đông Triều", "Hồng Phong", ["rau_ma", "bot_rau_ma"]),
    ("Cơ sở Mây tre đan Bình Khê", HOUSEHOLD, "Đông Triều", "Bình Khê", ["may_tre"]),
    # Quảng Yên
    ("HTX Thủy sản Tiền An", COOP, "Quảng Yên", "Tiền An", ["hau", "ruoc_hau", "cha_ca", "nuoc_mam"]),
    ("Hộ kinh doanh Nguyễn Thị Tươi", HOUSEHOLD, "Quảng Yên", "Phong Cốc", ["banh_gat_gu", "sua", "hau"]),
    ("HTX Rau má Hiệp Hòa", COOP, "Quảng Yên", "Hiệp Hòa", ["rau_ma", "bot_rau_ma"]),
    ("Cơ sở Mây tre đan Liên Hòa", HOUSEHOLD, "Quảng Yên", "Liên Hòa", ["may_tre"]),
    ("Công ty TNHH Thực phẩm Hà An", ENTERPRISE, "Quảng Yên", "Hà An", ["cha_ca", "ruoc_hau", "sua"]),
]


# --------------------------------------------------------------------------
# 4. Generation.
# --------------------------------------------------------------------------
def ascii_fold(s: str) -> str:
    s = s.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def slug(s: str) -> str:
    out, dash = [], False
    for c in ascii_fold(s).upper():
        if c.isascii() and c.isalnum():
            out.append(c)
            dash = False
        elif not dash and out:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


CODE_PREFIXES = [("Hộ kinh doanh ", "HKD "), ("Cơ sở ", "CS "), ("Công ty TNHH ", "CTY ")]


def producer_code(name: str) -> str:
    for long, short in CODE_PREFIXES:
        if name.startswith(long):
            name = short + name[len(long):]
    return slug(name)


def price_vnd(rng: random.Random, lo: int, hi: int, level: float) -> int:
    """A price in [lo, hi] thousand VND near the producer's price level (0 = cheap, 1 = dear)."""
    t = min(max(level + rng.uniform(-0.15, 0.15), 0.0), 1.0)
    k = round(lo + t * (hi - lo))
    if k >= 200:  # larger prices end in 5,000 or 0,000
        k = min(max(5 * round(k / 5), lo), hi)
    return k * 1000


@dataclass
class Product:
    sku: str
    producer: str
    name: str
    description: str
    category: str
    stars: int
    unit: str
    price_vnd: int
    stock: int


@dataclass
class Catalog:
    producers: list[dict] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)


def product_name(tpl: str, sfx: str, place: str, fixed_suffix: str) -> str:
    name = tpl.format(place=place) if "{place}" in tpl else f"{tpl}{fixed_suffix}"
    return f"{name} {sfx}" if sfx else name


def generate() -> Catalog:
    rng = random.Random(SEED)  # stars, prices, stock, description wording
    pick = random.Random(SEED + 1)  # which optional packagings a producer carries
    cat = Catalog()
    names: set[str] = set()
    skus: set[str] = set()

    for pname, pkind, district, locality, kinds in PRODUCERS:
        code = producer_code(pname)
        cat.producers.append(dict(code=code, name=pname, kind=pkind, district=district, province=PROVINCE))
        own: set[str] = set()
        ctx = dict(district=district, locality=locality, producer=pname)
        for key in kinds:
            kind = KINDS[key]
            assert district in kind.districts, (pname, key)
            level = rng.random()  # one price level per producer and product line
            for i, v in enumerate(kind.variants):
                if i > 0 and pname not in FULL_RANGE_PRODUCERS and pick.random() < DROP_VARIANT_RATE:
                    continue
                tpl = v.name or kind.name
                # Name: prefer the district ("Miến dong Bình Liêu"); when another producer
                # already uses that name, name it after the commune ("Miến dong Hoành Mô");
                # add the packaging to tell apart two products of the same producer. A fixed
                # brand name ("Thịt lợn Móng Cái") is left to its home district (the kind's
                # first district); producers elsewhere always add their commune.
                home = "{place}" in tpl or district == kind.districts[0]
                attempts = [(False, False)] if home else []
                attempts += [(True, False), (True, True)]  # (use commune, add packaging)
                name, used_locality = None, False
                for use_loc, with_unit in attempts:
                    place = locality if use_loc else district
                    cand = product_name(tpl, v.sfx, place, f" {locality}" if use_loc else "")
                    if with_unit or cand in own:
                        cand = f"{cand} {v.unit}"
                    if cand not in names:
                        name, used_locality = cand, use_loc
                        break
                assert name is not None, (pname, key, v)
                # SKU: district prefix, product stem, commune (if named after it), packaging.
                parts = [DISTRICTS[district], v.stem or kind.stem]
                if used_locality:
                    parts.append(slug(locality))
                parts.append(v.tag)
                sku = base = "-".join(parts)
                n = 2
                while sku in skus:
                    sku = f"{base}-{n}"
                    n += 1

                sentences = [rng.choice(v.intro or kind.intro)]
                if v.note:
                    sentences.append(v.note)
                elif kind.keep and rng.random() < 0.7:
                    sentences.append(kind.keep)
                if len(sentences) < 3 and rng.random() < 0.5:
                    sentences.append(rng.choice(CLOSING[kind.category]))
                desc = " ".join(s.format(**ctx) for s in sentences)

                stars = FIXED_STARS.get(name) or rng.choices(
                    list(STAR_WEIGHTS), weights=list(STAR_WEIGHTS.values()))[0]
                lo_s, hi_s = v.stock or kind.stock
                stock = 0 if rng.random() < OUT_OF_STOCK_RATE else rng.randint(lo_s, hi_s)

                cat.products.append(Product(
                    sku=sku, producer=code, name=name, description=desc, category=kind.category,
                    stars=stars, unit=v.unit, price_vnd=price_vnd(rng, v.lo, v.hi, level), stock=stock))
                names.add(name)
                own.add(name)
                skus.add(sku)
    return cat


# --------------------------------------------------------------------------
# TOML output.
# --------------------------------------------------------------------------
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_str(s: str) -> str:
    out = []
    for c in s:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return toml_str(str(v))


HEADER = """\
# ocop-market seed catalogue — modelled on the Quảng Ninh OCOP catalogue.
# SAMPLE DATA: producers are illustrative, OCOP star ratings, prices and stock levels are
# sample values for development and tests, not official ratings or real prices.
#
# Generated by tools/seedgen/gen_catalog.py (fixed random seed {seed}); do not edit by hand.
# Regenerate from the repository root with:
#   python3 tools/seedgen/gen_catalog.py > services/catalog/seed/catalog.toml
#
# {n_producers} producers, {n_products} products.
"""

PRODUCT_KEYS = ["sku", "producer", "name", "description", "category", "stars", "unit", "price_vnd", "stock"]
PRODUCER_KEYS = ["code", "name", "kind", "district", "province"]


def render(cat: Catalog) -> str:
    lines = [HEADER.format(seed=SEED, n_producers=len(cat.producers), n_products=len(cat.products))]
    for p in cat.producers:
        lines.append("[[producers]]")
        lines += [f"{k} = {toml_value(p[k])}" for k in PRODUCER_KEYS]
        lines.append("")
    for p in cat.products:
        lines.append("[[products]]")
        lines += [f"{k} = {toml_value(getattr(p, k))}" for k in PRODUCT_KEYS]
        lines.append("")
    text = "\n".join(lines)
    assert unicodedata.is_normalized("NFC", text)
    return text


def main() -> None:
    sys.stdout.reconfigure(encoding="utf-8", newline="\n")
    sys.stdout.write(render(generate()))


if __name__ == "__main__":
    main()
