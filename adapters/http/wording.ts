// Small wording helpers for messages built from values: "an analyst key", never "a analyst key".

/** The word with its indefinite article: `an analyst`, `a coordinator`, `an 8-bit`. Vowel letters (and 8, 11, 18) take "an". */
export function withArticle(word: string): string {
  return `${/^([aeiou]|8|1[18](?!\d))/i.test(word) ? 'an' : 'a'} ${word}`;
}
