//! BLEU and chrF, computed exactly as sacreBLEU 2.x does.
