#include "engine/aggregate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

namespace muse {

namespace {

std::string lower_collapsed(const std::string &s) {
    std::string out;
    bool space = false;
    for (unsigned char c : s) {
        if (std::isspace(c)) {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += static_cast<char>(std::tolower(c));
    }
    return out;
}

std::string strip_punctuation(std::string s) {
    while (!s.empty() && std::string(".,;:!?\"'`*)]}").find(s.back()) != std::string::npos) s.pop_back();
    size_t b = 0;
    while (b < s.size() && std::string("\"'`*([{").find(s[b]) != std::string::npos) ++b;
    return s.substr(b);
}

// The content of the last \boxed{...}, braces balanced; empty when there is none.
std::string boxed(const std::string &s) {
    const size_t at = s.rfind("\\boxed{");
    if (at == std::string::npos) return {};
    int depth = 1;
    for (size_t i = at + 7; i < s.size(); ++i) {
        if (s[i] == '{') ++depth;
        if (s[i] == '}' && --depth == 0) return s.substr(at + 7, i - at - 7);
    }
    return {};
}

// Exactly three digits at `at` (a thousands group after a comma).
bool thousands_group(const std::string &t, size_t at) {
    for (size_t k = at; k < at + 3; ++k)
        if (k >= t.size() || !std::isdigit(static_cast<unsigned char>(t[k]))) return false;
    return at + 3 >= t.size() || !std::isdigit(static_cast<unsigned char>(t[at + 3]));
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// "b" for answers that are a choice letter.
std::string choice_letter(const std::string &t) {
    // The whole answer is one letter, maybe bracketed: "b", "(b)", "b)", "b.".
    std::string core = strip_punctuation(t);
    if (core.size() == 1 && core[0] >= 'a' && core[0] <= 'j') return core;
    for (const char *lead : {"the answer is ", "answer is ", "answer: ", "answer ", "option ", "choice "}) {
        const size_t at = t.find(lead);
        if (at == std::string::npos) continue;
        std::string rest = strip_punctuation(t.substr(at + std::string(lead).size()));
        if (!rest.empty() && rest[0] >= 'a' && rest[0] <= 'j' && (rest.size() == 1 || !is_word_char(rest[1])))
            return rest.substr(0, 1);
    }
    return {};
}

std::string number_with_unit(const std::string &t) {
    for (size_t i = 0; i < t.size(); ++i) {
        const bool sign = (t[i] == '-' || t[i] == '+') && i + 1 < t.size() && std::isdigit(static_cast<unsigned char>(t[i + 1]));
        if (!sign && !std::isdigit(static_cast<unsigned char>(t[i]))) continue;
        if (i > 0 && (std::isalpha(static_cast<unsigned char>(t[i - 1])))) continue;  // "x2", "b12": not a number
        std::string digits;
        size_t j = i;
        if (sign) digits += t[j++];
        bool dot = false;
        for (; j < t.size(); ++j) {
            const char c = t[j];
            if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
            else if (c == ',' && thousands_group(t, j + 1))
                continue;  // "1,000"
            else if (c == '.' && !dot && j + 1 < t.size() && std::isdigit(static_cast<unsigned char>(t[j + 1]))) {
                dot = true;
                digits += c;
            } else break;
        }
        char buf[64];
        const double v = std::strtod(digits.c_str(), nullptr);
        if (std::fabs(v) < 1e15 && v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f", v);
        else std::snprintf(buf, sizeof buf, "%.10g", v);
        std::string out = buf;
        if (out == "-0") out = "0";
        // The unit: the word right after the number ("5 km", "5km", "12%").
        while (j < t.size() && t[j] == ' ') ++j;
        std::string unit;
        if (j < t.size() && t[j] == '%') unit = "%";
        while (j < t.size() && std::isalpha(static_cast<unsigned char>(t[j]))) unit += t[j++];
        if (!unit.empty()) out += " " + unit;
        return out;
    }
    return {};
}

} // namespace

std::string normalize_answer(const std::string &answer) {
    std::string text = answer;
    if (std::string b = boxed(text); !b.empty()) {
        // A LaTeX expression is compared as written, not by its first number.
        if (b.find('\\') != std::string::npos) return lower_collapsed(b);
        text = b;
    }
    const std::string t = lower_collapsed(text);
    const std::string plain = strip_punctuation(t);
    for (const char *y : {"yes", "y", "true", "correct"})
        if (plain == y) return "yes";
    for (const char *n : {"no", "n", "false", "incorrect"})
        if (plain == n) return "no";
    if (std::string c = choice_letter(t); !c.empty()) return c;
    if (std::string n = number_with_unit(t); !n.empty()) return n;
    return plain;
}

VoteResult vote(const std::vector<std::string> &answers, const std::vector<double> &weights,
                const AnswerNormalizer &normalize) {
    VoteResult r;
    std::vector<std::string> keys;
    std::map<std::string, double> total;
    std::map<std::string, size_t> first;
    double sum = 0.0;
    for (size_t i = 0; i < answers.size(); ++i) {
        const double w = weights.empty() ? 1.0 : weights[i];
        if (!(w >= 0.0)) continue;
        const std::string key = normalize ? normalize(answers[i]) : answers[i];
        if (key.empty()) continue;
        if (!total.count(key)) {
            keys.push_back(key);
            first[key] = i;
        }
        total[key] += w;
        sum += w;
    }
    for (const std::string &k : keys) r.tally.emplace_back(k, total[k]);
    std::stable_sort(r.tally.begin(), r.tally.end(), [](const auto &a, const auto &b) { return a.second > b.second; });
    if (r.tally.empty()) return r;
    r.answer = r.tally.front().first;
    r.winner = static_cast<int>(first[r.answer]);
    r.agreement = sum > 0 ? r.tally.front().second / sum : 0.0;
    return r;
}

void TraceConfidence::add(const std::vector<float> &top_logprobs) {
    if (top_logprobs.empty()) return;
    double s = 0.0;
    for (float lp : top_logprobs) s += lp;
    add_confidence(-s / static_cast<double>(top_logprobs.size()));
}

void TraceConfidence::add_confidence(double c) {
    c_.push_back(c);
    window_sum_ += c;
    if (static_cast<int>(c_.size()) > window_) window_sum_ -= c_[c_.size() - static_cast<size_t>(window_) - 1];
    if (window_full()) {
        const double g = window_sum_ / window_;
        lowest_ = has_lowest_ ? std::min(lowest_, g) : g;
        has_lowest_ = true;
    }
}

double TraceConfidence::current_group() const {
    if (c_.empty()) return 0.0;
    return window_sum_ / static_cast<double>(std::min<size_t>(c_.size(), static_cast<size_t>(window_)));
}

double TraceConfidence::lowest_group() const { return has_lowest_ ? lowest_ : current_group(); }

double TraceConfidence::tail() const {
    if (c_.empty()) return 0.0;
    const size_t n = std::min<size_t>(c_.size(), static_cast<size_t>(tail_));
    return std::accumulate(c_.end() - static_cast<long>(n), c_.end(), 0.0) / static_cast<double>(n);
}

double TraceConfidence::mean() const {
    return c_.empty() ? 0.0 : std::accumulate(c_.begin(), c_.end(), 0.0) / static_cast<double>(c_.size());
}

double trace_score(const TraceConfidence &c, TraceScore how) {
    switch (how) {
    case TraceScore::lowest_group: return c.lowest_group();
    case TraceScore::tail: return c.tail();
    case TraceScore::mean: return c.mean();
    }
    return 0.0;
}

std::vector<size_t> top_traces(const std::vector<double> &scores, double keep) {
    std::vector<size_t> idx(scores.size());
    std::iota(idx.begin(), idx.end(), size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    if (idx.empty()) return idx;
    keep = std::clamp(keep, 0.0, 1.0);
    const size_t n = std::max<size_t>(1, static_cast<size_t>(std::ceil(keep * static_cast<double>(scores.size()) - 1e-9)));
    idx.resize(std::min(n, idx.size()));
    std::sort(idx.begin(), idx.end());
    return idx;
}

double calibrate_threshold(std::vector<double> s, double percentile) {
    if (s.empty()) return 0.0;
    std::sort(s.begin(), s.end());
    const double p = std::clamp(percentile, 0.0, 100.0) / 100.0 * static_cast<double>(s.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(p)), hi = std::min(lo + 1, s.size() - 1);
    return s[lo] + (s[hi] - s[lo]) * (p - static_cast<double>(lo));
}

} // namespace muse
