#include "tools/call-stage.h"

#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <limits>

namespace muse::tools {

using reasoning::State;
using Kind = ToolChoice::Kind;

namespace {
constexpr size_t kRecent = 512;  // enough for a trigger and an atem header
}

CallStage::CallStage(std::shared_ptr<const CallPlan> plan, const Tokenizer &tokenizer)
    : plan_(std::move(plan)), tok_(&tokenizer), trie_(grammar::TokenTrie::of(tokenizer)) {
    if (plan_->choice.kind == Kind::none && !plan_->call_open.empty()) {
        const std::vector<int32_t> open = tokens(plan_->call_open);
        if (open.size() == 1) banned_ = open;
    }
}

std::vector<int32_t> CallStage::tokens(const std::string &text) const {
    return text.empty() ? std::vector<int32_t>{} : tok_->tokenize(text, false, true);
}

std::vector<int32_t> CallStage::end_of_turn_tokens() const {
    if (!plan_->end_of_turn.empty()) {
        std::vector<int32_t> t = tokens(plan_->end_of_turn);
        if (t.size() == 1) return t;
    }
    if (!trie_->eog().empty()) return {trie_->eog().front()};
    return {};
}

void CallStage::start(std::shared_ptr<const grammar::Grammar> g, Part part, std::vector<int32_t> after,
                      std::string_view already, std::vector<int32_t> instead) {
    if (!g) return;
    grammar::Matcher m = g->matcher();
    // Text of the trigger's token that already belongs to the body ("<tool_call>\n{" in one piece).
    if (!already.empty() && !m.accept_bytes(already)) return;  // not a call we can constrain
    m_ = std::move(m);
    part_ = part;
    after_ = std::move(after);
    instead_ = std::move(instead);
    if (m_->is_accepting() && !m_->can_continue()) complete();
}

void CallStage::complete() {
    if (part_ == Part::body) ++calls_;
    m_.reset();
    part_ = Part::none;
    if (!instead_.empty() && !after_.empty()) {  // the model picks how the message ends
        closing_ = true;
        return;
    }
    forcing_.insert(forcing_.end(), after_.begin(), after_.end());
    after_.clear();
}

void CallStage::apply(Candidates &c) {
    for (int32_t t : banned_)
        if (t >= 0 && static_cast<size_t>(t) < c.logits.size()) c.logits[static_cast<size_t>(t)] = -INFINITY;
    if (!forcing_.empty()) {
        c.forced = forcing_.front();
        return;
    }
    if (closing_) {
        for (size_t id = 0; id < c.logits.size(); ++id) {
            const auto t = static_cast<int32_t>(id);
            if (t != after_.front() && std::find(instead_.begin(), instead_.end(), t) == instead_.end())
                c.logits[id] = -INFINITY;
        }
        return;
    }
    if (!m_) return;
    const auto mp = m_->mask(*trie_);
    const auto &mask = *mp;
    // The token that follows the grammar (atem's `<|message|>`) may end it where it is complete.
    const int32_t closer = !after_.empty() && m_->is_accepting() ? after_.front() : -1;
    const float closer_logit =
        closer >= 0 && static_cast<size_t>(closer) < c.logits.size() ? c.logits[static_cast<size_t>(closer)] : 0.0f;
    const auto n = static_cast<int32_t>(std::min<size_t>(c.logits.size(), static_cast<size_t>(trie_->n_vocab())));
    int32_t allowed = 0, only = -1;
    const auto ends_here = [&](int32_t id) {
        return id == closer ||
               (closer >= 0 && std::find(instead_.begin(), instead_.end(), id) != instead_.end());
    };
    for (int32_t id = 0; id < n; ++id) {
        if (grammar::mask_test(mask, id) || ends_here(id)) {
            ++allowed;
            only = id;
        } else {
            c.logits[static_cast<size_t>(id)] = -INFINITY;
        }
    }
    for (size_t id = static_cast<size_t>(n); id < c.logits.size(); ++id) c.logits[id] = -INFINITY;
    if (closer >= 0 && closer < n) c.logits[static_cast<size_t>(closer)] = closer_logit;
    if (allowed == 1) c.forced = only;
    else if (allowed == 0 && !trie_->eog().empty()) c.forced = trie_->eog().front();  // a forced token broke it
}

void CallStage::accept(int32_t token, bool forced) {
    (void)forced;
    piece_ = tok_->token_to_piece(token, true);
    recent_ += piece_;
    if (recent_.size() > kRecent) recent_.erase(0, recent_.size() - kRecent);
    if (!forcing_.empty() && forcing_.front() == token) {
        forcing_.pop_front();
        return;
    }
    forcing_.clear();  // another stage overrode the framing: do not force the rest of it
    if (closing_) {
        closing_ = false;
        if (!after_.empty() && token == after_.front()) forcing_.insert(forcing_.end(), after_.begin() + 1, after_.end());
        after_.clear();
        instead_.clear();
        return;
    }
    if (!m_) return;
    if (m_->is_accepting() && std::find(instead_.begin(), instead_.end(), token) != instead_.end()) {
        if (part_ == Part::body) ++calls_;  // the message ended another way: nothing more to force
        m_.reset();
        part_ = Part::none;
        after_.clear();
        instead_.clear();
        return;
    }
    if (!after_.empty() && token == after_.front() && m_->is_accepting()) {
        after_.erase(after_.begin());
        instead_.clear();
        complete();
        return;
    }
    // A token the grammar rejects was forced by the thinking controller: it is skipped.
    if (m_->accept_token(token, *trie_) && m_->is_accepting() && !m_->can_continue()) complete();
}

void CallStage::observe(State state, bool controller_busy) {
    if (state == State::reasoning) {  // never inside reasoning
        m_.reset();
        forcing_.clear();
        after_.clear();
        instead_.clear();
        closing_ = false;
        part_ = Part::none;
        last_ = state;
        return;
    }
    if (!last_ || *last_ != state) pending_ = true;
    last_ = state;
    if (!pending_ || active()) {
        if (active()) pending_ = false;
        return;
    }
    if (controller_busy) return;  // the controller's framing first; decide once it is written
    pending_ = false;
    const CallPlan &p = *plan_;
    const Kind kind = p.choice.kind;
    const bool must_call = (kind == Kind::required || kind == Kind::named) && calls_ == 0;
    const std::vector<int32_t> turn_end = p.parallel ? std::vector<int32_t>{} : end_of_turn_tokens();

    switch (p.syntax) {
    case CallSyntax::atem: {
        // Headers are constrained unless the model may address anyone (auto, thinking allowed).
        const bool headers = kind != Kind::automatic || !p.thinking_allowed || (!p.parallel && calls_ > 0);
        if (state == State::header && headers) {
            // Text the `<|start|>` token's piece already holds after it belongs to the header.
            const size_t at = piece_.rfind(p.start);
            start(calls_ == 0 ? p.header_first : p.header_later, Part::header, tokens(p.message_open),
                  at == std::string::npos ? std::string_view() : std::string_view(piece_).substr(at + p.start.size()));
        } else if (state == State::between && headers) {
            for (int32_t t : tokens(p.start)) forcing_.push_back(t);
        } else if (state == State::tool_call && kind != Kind::none && p.body_any) {
            // The recipient: the header text between ` to=` and `<|message|>`.
            const size_t msg = recent_.rfind(p.message_open);
            const size_t to = msg == std::string::npos ? std::string::npos : recent_.rfind(" to=", msg);
            std::string recipient = to == std::string::npos ? std::string() : recent_.substr(to + 4, msg - to - 4);
            auto it = p.body_for.find(recipient);
            const std::string_view already =
                msg != std::string::npos && piece_.find(p.message_open) != std::string::npos
                    ? std::string_view(recent_).substr(msg + p.message_open.size())
                    : std::string_view();
            // The message ends right after its block (the parser reads nothing else there):
            // <|eom|> lets more messages follow, the end of turn allows no other call; with
            // parallel calls the model chooses between them (MUSE_GLIMMER.md §3.1: the last
            // call of a turn ends with <|eot|>).
            start(it != p.body_for.end() ? it->second : p.body_any, Part::body,
                  p.parallel ? tokens(p.message_end) : turn_end, already,
                  p.parallel ? end_of_turn_tokens() : std::vector<int32_t>{});
        }
        break;
    }
    case CallSyntax::hermes: {
        if (state == State::tool_call && kind != Kind::none && p.body_any) {
            std::vector<int32_t> after = tokens(p.call_close);
            after.insert(after.end(), turn_end.begin(), turn_end.end());
            // The tag may end inside this token ("ll>\n{" after byte tokens): what follows it is body.
            const size_t at = recent_.rfind(p.call_open);
            start(p.body_any, Part::body, std::move(after),
                  at == std::string::npos ? std::string_view() : std::string_view(recent_).substr(at + p.call_open.size()));
        } else if ((state == State::answer || state == State::open) && must_call) {
            for (int32_t t : tokens(p.call_open)) forcing_.push_back(t);
        }
        break;
    }
    case CallSyntax::llama_json: {
        if (state == State::tool_call && kind != Kind::none && p.body_any) {
            const size_t at = piece_.find('{');
            start(p.body_any, Part::body, turn_end,
                  at == std::string::npos ? std::string_view() : std::string_view(piece_).substr(at));
        } else if ((state == State::open || state == State::answer) && must_call) {
            start(p.body_any, Part::body, turn_end, std::string_view());
        }
        break;
    }
    }
}

} // namespace muse::tools
