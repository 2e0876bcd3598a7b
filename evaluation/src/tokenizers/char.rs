//! sacreBLEU's `char` tokenizer.

/// Every character of `line` becomes a token: the characters joined by single
/// spaces, whitespace characters included (BLEU's later whitespace split drops
/// those), as sacreBLEU's `char` tokenizer does.
pub fn tokenize_char(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    for (i, c) in line.chars().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_per_character() {
        assert_eq!(tokenize_char("ab c"), "a b   c");
        assert_eq!(tokenize_char("สวัสดี"), "ส ว ั ส ด ี");
        assert_eq!(tokenize_char(""), "");
    }
}
