//! The OpenAI chat request `request_to_chat` writes: typed structs borrowing from the
//! Anthropic request, serialised once.

use crate::raw::Raw;
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The chat request written upstream.
#[derive(Serialize)]
pub(super) struct Out<'a> {
    pub(super) model: &'a str,
    pub(super) messages: Vec<ChatMessage<'a>>,
    pub(super) max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stop: Raw<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_effort: Option<&'static str>,
}

/// `stream_options`.
#[derive(Serialize)]
pub(super) struct StreamOptions {
    pub(super) include_usage: bool,
}

/// A chat message.
#[derive(Serialize)]
pub(super) struct ChatMessage<'a> {
    pub(super) role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_call_id: Option<Cow<'a, str>>,
    /// `None` is written as `null`.
    pub(super) content: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<ToolCall<'a>>,
}

impl<'a> ChatMessage<'a> {
    pub(super) fn new(role: &'static str, content: Content<'a>) -> Self {
        ChatMessage {
            role,
            tool_call_id: None,
            content: Some(content),
            tool_calls: Vec::new(),
        }
    }
}

/// A message's content: text or parts.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Content<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

/// A user content part.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Part<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
}

/// `image_url`.
#[derive(Serialize)]
pub(super) struct ImageUrl<'a> {
    pub(super) url: Cow<'a, str>,
}

/// An assistant tool call.
#[derive(Serialize)]
pub(super) struct ToolCall<'a> {
    pub(super) id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: CallFunction<'a>,
}

/// A tool call's `function`.
#[derive(Serialize)]
pub(super) struct CallFunction<'a> {
    pub(super) name: Cow<'a, str>,
    pub(super) arguments: String,
}

/// An OpenAI function tool.
#[derive(Serialize)]
pub(super) struct Tool<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: ToolFunction<'a>,
}

/// A tool's `function`.
#[derive(Serialize)]
pub(super) struct ToolFunction<'a> {
    pub(super) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<Cow<'a, str>>,
    pub(super) parameters: &'a RawValue,
}

/// OpenAI's `tool_choice`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Choice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: Named<'a>,
    },
}

/// `{name}`.
#[derive(Serialize)]
pub(super) struct Named<'a> {
    pub(super) name: Cow<'a, str>,
}
